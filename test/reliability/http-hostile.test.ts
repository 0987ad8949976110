// A hostile guest against the built daemon's metadata HTTP: oversized and malformed requests,
// traversal, NUL, bad methods and protocols, slowloris and long-poll floods. Every answer is a
// 4xx or a closed connection (never a 5xx), and a real request keeps being answered meanwhile.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, ED25519 } from '../support/store.js';
import { figure, httpGet, sleep, startDaemon, type Daemon } from './support.js';

interface RawAnswer { status?: number; closed: boolean; head: string }

/** Writes raw bytes and reads what comes back within `waitMs`: the status line, or a close. */
function raw(port: number, bytes: Buffer | string, waitMs = 3000, host = '127.0.0.1'): Promise<RawAnswer> {
  return new Promise((resolve) => {
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(data);
      resolve({ status: m ? Number(m[1]) : undefined, closed, head: data.split('\r\n')[0] ?? '' });
    };
    const s = connect({ host, port }, () => s.write(bytes));
    s.setEncoding('latin1');
    s.on('data', (c) => {
      data += c;
      if (/\r\n\r\n/.test(data)) finish(false);
    });
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    setTimeout(() => finish(false), waitMs);
  });
}

const req = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\nHost: metadata\r\n${extra}\r\n`;

describe('metadata HTTP under a hostile guest', () => {
  const t = etcdTestStore();
  let d: Daemon;
  /** A real request from the VM: must keep working through everything. */
  const real = async () => {
    const r = await httpGet(`http://127.0.0.1:${d.httpPort}/keys`, { timeoutMs: 5000 });
    return r.status === 200 && r.body === `${ED25519}\n`;
  };

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'loop', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'loop.test', metadata6: '::2', metadata4: '127.0.0.2' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addVm({ name: 'self', network: 'loop', owner: 'alice', addresses: ['::1', '127.0.0.1'], userData: '#cloud-config\n' });
    d = await startDaemon(t.url, t.prefix, ['--log-level', 'info']);
  });
  afterAll(async () => {
    await d?.run.stop('SIGKILL');
    await t.close();
  });

  it('oversized, traversing, NUL-laden, bad-method and non-HTTP requests: 4xx or closed, never 5xx', async () => {
    const hostile: [string, string | Buffer][] = [
      ['URL over 2 KiB', req(`/openstack/${'a'.repeat(3000)}`)],
      ['URL of 100 KiB', req(`/${'a'.repeat(100_000)}`)],
      ['one 20 KiB header', req('/keys', `X-Big: ${'b'.repeat(20_000)}\r\n`)],
      ['1000 headers', req('/keys', Array.from({ length: 1000 }, (_, i) => `X-H${i}: ${i}\r\n`).join(''))],
      ['dot-dot', req('/openstack/../keys')],
      ['dot-dot deep', req('/openstack/latest/../../../../etc/passwd')],
      ['encoded dot-dot', req('/openstack/%2e%2e/keys')],
      ['encoded slash', req('/openstack/latest%2f..%2f..%2fkeys')],
      ['backslash', req('/openstack\\..\\keys')],
      ['single dot', req('/openstack/./latest/meta_data.json')],
      ['encoded NUL in path', req('/keys%00.json')],
      ['encoded NUL in query', req('/computeMetadata/v1/?x=%00', 'Metadata-Flavor: Google\r\n')],
      ['raw NUL in path', Buffer.from('GET /keys\0 HTTP/1.1\r\nHost: metadata\r\n\r\n', 'latin1')],
      ['raw NUL in a header', Buffer.from('GET /keys HTTP/1.1\r\nHost: metadata\r\nX-A: a\0b\r\n\r\n', 'latin1')],
      ['control byte in path', Buffer.from('GET /ke\x01ys HTTP/1.1\r\nHost: metadata\r\n\r\n', 'latin1')],
      ['UTF-8 in path', Buffer.from('GET /openstack/latest/m\u00e9ta HTTP/1.1\r\nHost: metadata\r\n\r\n', 'utf8')],
      ['POST', 'POST /keys HTTP/1.1\r\nHost: metadata\r\nContent-Length: 3\r\n\r\nabc'],
      ['DELETE', 'DELETE /keys HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['PATCH', 'PATCH /instance HTTP/1.1\r\nHost: metadata\r\nContent-Length: 0\r\n\r\n'],
      ['TRACE', 'TRACE / HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['OPTIONS', 'OPTIONS * HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['CONNECT', 'CONNECT metadata:80 HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['PROPFIND', 'PROPFIND / HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['lower-case method', 'get /keys HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['made-up method', 'BREW /keys HTTP/1.1\r\nHost: metadata\r\n\r\n'],
      ['PUT to a GET route', 'PUT /keys HTTP/1.1\r\nHost: metadata\r\nContent-Length: 0\r\n\r\n'],
      ['10 MiB token PUT body', Buffer.concat([Buffer.from('PUT /latest/api/token HTTP/1.1\r\nHost: metadata\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 10485760\r\n\r\n'), Buffer.alloc(1 << 20, 0x41)])],
      ['token TTL out of range', 'PUT /latest/api/token HTTP/1.1\r\nHost: metadata\r\nX-aws-ec2-metadata-token-ttl-seconds: 99999999999999999999\r\nContent-Length: 0\r\n\r\n'],
      ['forged token', req('/latest/meta-data/', 'X-aws-ec2-metadata-token: AAAA.BBBB.CCCC\r\n')],
      ['X-Forwarded-For', req('/keys', 'X-Forwarded-For: 10.0.0.9\r\n')],
      ['Forwarded', req('/openstack/latest/meta_data.json', 'Forwarded: for=10.0.0.9\r\n')],
      ['GCE without flavour header', req('/computeMetadata/v1/instance/')],
      ['GCE bad timeout', req('/computeMetadata/v1/?wait_for_change=true&timeout_sec=-5', 'Metadata-Flavor: Google\r\n')],
      ['GCE huge last_etag', req(`/computeMetadata/v1/?wait_for_change=true&last_etag=${'e'.repeat(1500)}`, 'Metadata-Flavor: Google\r\n')],
      ['CL and TE together', 'GET /keys HTTP/1.1\r\nHost: metadata\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
      ['bad chunk', 'GET /keys HTTP/1.1\r\nHost: metadata\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n'],
      ['negative Content-Length', 'GET /keys HTTP/1.1\r\nHost: metadata\r\nContent-Length: -1\r\n\r\n'],
      ['two Hosts', 'GET /keys HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
      ['HTTP/9.9', 'GET /keys HTTP/9.9\r\nHost: metadata\r\n\r\n'],
      ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'],
      ['TLS client hello', Buffer.from('160301002e0100002a0303' + '00'.repeat(32) + '000002002f0100', 'hex')],
      ['no request line', '\r\n\r\n\r\n\r\n'],
      ['header without colon', 'GET /keys HTTP/1.1\r\nHost metadata\r\n\r\n'],
      ['obs-fold header', 'GET /keys HTTP/1.1\r\nHost: metadata\r\nX-A: a\r\n b\r\n\r\n'],
      ['absolute-form to elsewhere', 'GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n'],
      ['random bytes', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 255))],
    ];
    // Odd but valid (or not yet complete) requests: any answer but a 5xx. Identity is the source
    // address, so Host, extra headers and an unread body change nothing about what is served.
    const tolerated = new Set(['1000 headers', '10 MiB token PUT body', 'bad chunk', 'two Hosts', 'absolute-form to elsewhere', 'no request line']);
    const results: Record<string, string> = {};
    const bad: string[] = [];
    for (const [name, bytes] of hostile) {
      const a = await raw(d.httpPort, bytes);
      results[name] = a.status ? String(a.status) : a.closed ? 'closed' : 'no answer';
      const refused = a.status ? a.status >= 400 && a.status < 500 : a.closed;
      if (!refused && !(tolerated.has(name) && !(a.status && a.status >= 500))) bad.push(`${name}: ${results[name]} (${a.head})`);
    }
    expect(bad).toEqual([]);
    expect(Object.values(results).filter((r) => /^5/.test(r))).toEqual([]);
    expect(await real()).toBe(true);
    figure('http-hostile-requests', { cases: hostile.length, results });
  }, 180_000);

  it('slowloris: hundreds of half-open connections never block a real request, and are closed by the server', async () => {
    const N = Number(process.env.SLOWLORIS_CONNECTIONS ?? 400);
    const sockets: Socket[] = [];
    const closedAt: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < N; i++) {
      // All from ::1: one address holds at most 64 connections (the rest are closed at once), and
      // the real request comes from the VM's other address, 127.0.0.1.
      const s = connect({ host: '::1', port: d.httpPort });
      s.on('error', () => undefined);
      s.on('connect', () => s.write('GET /keys HTTP/1.1\r\nHost: metadata\r\n'));
      s.on('close', () => closedAt.push(Date.now() - t0));
      sockets.push(s);
    }
    const drip = setInterval(() => { for (const s of sockets) if (!s.destroyed) s.write(`X-${Math.random().toString(36).slice(2, 6)}: 1\r\n`); }, 1000);
    const latencies: number[] = [];
    try {
      for (let i = 0; i < 20; i++) {
        const a = Date.now();
        expect(await real()).toBe(true);
        latencies.push(Date.now() - a);
        await sleep(100);
      }
      // The server's header timeout ends them, dripping or not.
      await (async () => {
        const deadline = Date.now() + 25_000;
        while (closedAt.length < N && Date.now() < deadline) await sleep(250);
      })();
    } finally {
      clearInterval(drip);
      for (const s of sockets) s.destroy();
    }
    expect(closedAt.length).toBe(N);
    expect(d.run.proc.exitCode).toBeNull();
    latencies.sort((a, b) => a - b);
    figure('http-slowloris', { connections: N, realRequests: latencies.length, realP50Ms: latencies[10], realMaxMs: latencies.at(-1), allClosedByServerAfterMs: Math.max(...closedAt) });
  }, 120_000);

  it('long-poll flood: waits beyond the bound get 429 at once, a real request is still answered, a change wakes the rest', async () => {
    const N = 500;
    // From ::1; the real request from 127.0.0.1. Past 64 open connections from one address the
    // server closes new ones at once (status 0 here); of those it takes, 16 wait and the rest get 429.
    const url = `http://[::1]:${d.httpPort}/computeMetadata/v1/instance/attributes/?recursive=true&wait_for_change=true&timeout_sec=60`;
    const polls = Array.from({ length: N }, () => httpGet(url, { headers: { 'Metadata-Flavor': 'Google' }, timeoutMs: 60_000 }).then((r) => r.status, () => 0));
    await sleep(1500);
    expect(await real()).toBe(true);
    const t0 = Date.now();
    await t.writer.setVm('self', 'loop', { meta: { flood: 'over' } });
    const statuses = await Promise.all(polls);
    const count = (s: number) => statuses.filter((x) => x === s).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429 && s !== 0)).toEqual([]);
    expect(count(200)).toBeGreaterThan(0);
    expect(count(200)).toBeLessThanOrEqual(16);
    expect(count(429)).toBeGreaterThan(0);
    expect(count(0)).toBeGreaterThan(N / 2); // refused by the connection bound (slots freed by 429s admit a few more)
    figure('http-longpoll-flood', { polls: N, answered200OnChange: count(200), refused429: count(429), connectionRefused: count(0), wokenWithinMs: Date.now() - t0 });
  }, 90_000);
  it('spoof flood: proxy headers, foreign Hosts and unknown sources are all refused and counted, the log stays bounded', async () => {
    const before = d.run.output().split('\n').filter((l) => l.includes('refused spoofed metadata request')).length;
    const N = 600;
    const started = Date.now();
    const kinds: { headers: Record<string, string>; from?: string; status: number }[] = [
      { headers: { 'X-Forwarded-For': '127.0.0.1' }, status: 403 },
      { headers: { Via: '1.1 proxy' }, status: 403 },
      { headers: { Host: 'attacker.example' }, status: 400 },
      { headers: {}, from: '127.0.0.9', status: 404 },
    ];
    const statuses: number[] = [];
    for (let i = 0; i < N; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => {
        const k = kinds[(i + j) % kinds.length];
        return httpGet(`http://127.0.0.1:${d.httpPort}/openstack/latest/user_data`, { headers: k.headers, localAddress: k.from })
          .then((r) => (r.status === k.status ? 0 : r.status));
      }));
      statuses.push(...batch);
    }
    expect(statuses.filter((s) => s !== 0)).toEqual([]);
    expect(await real()).toBe(true);
    const lines = d.run.output().split('\n').filter((l) => l.includes('refused spoofed metadata request'));
    const windows = Math.ceil((Date.now() - started) / 10_000) + 1;
    // At most 10 per reason (three reasons) per 10 s window, however many arrive.
    expect(lines.length - before).toBeLessThanOrEqual(windows * 10 * 3);
    expect(lines.length - before).toBeGreaterThan(0);
    for (const l of lines) expect(l).not.toContain('#cloud-config');
    const metrics = (await httpGet(`http://[::1]:${d.adminPort}/metrics`)).body;
    const refused = [...metrics.matchAll(/uncloud_metadata_http_refused_spoofs_total\{reason="[^"]+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    expect(refused).toBeGreaterThanOrEqual(N);
    figure('http-spoof-flood', { requests: N, refused: refused, logLines: lines.length - before, ms: Date.now() - started });
  }, 90_000);
});
