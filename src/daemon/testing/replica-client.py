# A guest-like client of a replicated metadata service, run inside the test's network namespace:
# every lookup of `metadata` goes through glibc's resolver (resolv.conf: both replicas as
# nameservers, search domain), every fetch tries each address the lookup returned in turn (what
# socket.create_connection does), and a GCE-style long-poller follows the VM's attributes with
# wait_for_change/last_etag, retrying at once on any failure (Google's guest agent does). One
# JSON line per event on stdout. Usage: replica-client.py SOURCE_ADDRESS
import http.client, json, socket, sys, threading, time

SRC = sys.argv[1]
out_lock = threading.Lock()


def emit(**ev):
    ev['t'] = time.time()
    with out_lock:
        print(json.dumps(ev), flush=True)


def fetch(path, headers=None, timeout=5):
    started = time.time()
    infos = socket.getaddrinfo('metadata', 80, socket.AF_INET6, socket.SOCK_STREAM)
    lookup_ms = (time.time() - started) * 1000
    last = None
    for *_, sa in infos:
        try:
            c = http.client.HTTPConnection(sa[0], 80, timeout=timeout, source_address=(SRC, 0))
            c.request('GET', path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, dict(r.getheaders()), body, sa[0], lookup_ms
        except OSError as e:
            last = e
    raise last


def fetcher():
    while True:
        try:
            status, _, _, addr, lookup_ms = fetch('/openstack/latest/meta_data.json')
            emit(kind='fetch', ok=status == 200, status=status, addr=addr, lookupMs=round(lookup_ms))
        except Exception as e:  # a lookup or every address failed: the client's own retries are spent
            emit(kind='fetch', ok=False, error=repr(e))
        time.sleep(0.1)


def poller():
    etag = None
    while True:
        # The first read takes the current state and its ETag; each next one waits for a change.
        q = '/computeMetadata/v1/instance/attributes/?recursive=true&alt=json'
        if etag:
            q += '&wait_for_change=true&timeout_sec=20&last_etag=' + etag
        try:
            status, headers, body, addr, _ = fetch(q, {'Metadata-Flavor': 'Google'}, timeout=30)
            if status == 200:
                etag = headers.get('ETag') or headers.get('etag')
                emit(kind='poll', ok=True, addr=addr, etag=etag, attributes=json.loads(body))
            else:
                emit(kind='poll', ok=False, status=status)
                time.sleep(0.2)
        except Exception as e:
            emit(kind='poll', ok=False, error=repr(e))


threading.Thread(target=fetcher, daemon=True).start()
threading.Thread(target=poller, daemon=True).start()
while True:
    time.sleep(1)
