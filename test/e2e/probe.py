# Traffic for the nftables namespace tests: send UDP from a chosen source, send a router
# advertisement, a neighbour advertisement or solicitation (with a chosen link-layer option),
# receive UDP and print "SOURCE PAYLOAD" lines, or try a TCP connection and print the outcome.
import socket, struct, sys, time

def udp_send(src, dst, port, msg):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.sendto(msg.encode(), (dst, int(port)))

def udp_recv(addr, port, seconds):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.bind((addr, int(port)))
    s.settimeout(0.2)
    print('ready', flush=True)
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            data, peer = s.recvfrom(2048)
            print(peer[0], data.decode(), flush=True)
        except socket.timeout:
            pass

def icmp6(iface, dst, payload, src=None):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    if src:
        s.bind((src, 0, 0, socket.if_nametoindex(iface)))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
    s.sendto(payload, (dst, 0, 0, socket.if_nametoindex(iface)))

def ra_send(iface):
    # type 134, code 0, checksum (kernel), hop limit 64, flags 0, lifetime 1800, reachable, retrans
    icmp6(iface, 'ff02::1', struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0))

def na_send(iface, target):
    # type 136, override flag, target address: claims `target` for this interface's MAC
    icmp6(iface, 'ff02::1', struct.pack('!BBHI', 136, 0, 0, 0x20000000) + socket.inet_pton(socket.AF_INET6, target))

def ns_send(iface, src, dst, target, sllao='-'):
    # type 135, target, then a source link-layer address option (type 1, length 1) if given
    opt = b'' if sllao == '-' else struct.pack('!BB', 1, 1) + bytes.fromhex(sllao.replace(':', ''))
    icmp6(iface, dst, struct.pack('!BBHI', 135, 0, 0, 0) + socket.inet_pton(socket.AF_INET6, target) + opt, None if src == '::' else src)

def tcp_connect(src, dst, port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.settimeout(3)
    s.bind((src, 0))
    try:
        s.connect((dst, int(port)))
        print('connected', flush=True)
    except OSError as e:
        print('failed', e, flush=True)

def tcp_listen(addr, *ports):
    socks = []
    for port in ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, int(port)))
        s.listen(16)
        socks.append(s)
    print('ready', flush=True)
    import select
    while True:
        for s in select.select(socks, [], [])[0]:
            c, peer = s.accept()
            print(peer[0], s.getsockname()[1], flush=True)
            c.close()

{'ns-send': ns_send, 'tcp-connect': tcp_connect, 'tcp-listen': tcp_listen, 'udp-send': udp_send, 'udp-recv': udp_recv, 'ra-send': ra_send, 'na-send': na_send}[sys.argv[1]](*sys.argv[2:])
