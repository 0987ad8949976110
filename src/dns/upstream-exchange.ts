// One question's exchange with the configured upstreams: the first try goes to the upstream
// that answered last (the first one to begin with), and while no usable answer has come, the next try goes to the next upstream after a
// retransmission interval that doubles each time (RFC 1035 §7.2, RFC 1536 §1), until the budget
// is spent. Every try keeps listening until the exchange ends, so a late answer from an earlier
// try still counts. Each try is a connected UDP socket on a kernel-chosen random port with a
// random ID: the kernel drops datagrams from any other peer, and an ICMP port unreachable comes
// back as ECONNREFUSED, which ends that upstream's part at once instead of a timeout.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import { FLAG, HEADER_LEN, RCODE, TYPE, buildQuery, parseResponse, type ParsedResponse } from './wire.js';

export interface Upstream { host: string; port: number }

export interface Question {
  /** Lower-cased QNAME in wire format. */
  qnameWire: Buffer;
  qname: string;
  qtype: number;
  qclass: number;
  /** Passed upstream (DO, CD): a validating client must get what a validating upstream sends. */
  dnssecOk: boolean;
  checkingDisabled: boolean;
}

export interface Reply { buf: Buffer; parsed: ParsedResponse; upstream: Upstream; /** Its index in the list asked. */ index: number }

export interface ExchangeOptions {
  /** How long the whole exchange may take before the client gets SERVFAIL. */
  budgetMs: number;
  /** Wait before the first retransmission; doubles after each. */
  retransmitMs: number;
  /** Per try, for the latency histogram. */
  observe(seconds: number, outcome: 'ok' | 'timeout' | 'error'): void;
  /** The upstream to ask first (the one that answered last time), default 0. */
  first?: number;
}

/** How one try ended. */
type Outcome =
  | { kind: 'answer'; reply: Reply }
  /** TC set: ask the same upstream over TCP. */
  | { kind: 'truncated' }
  /** FORMERR without an OPT to our EDNS query: the upstream does not do EDNS (RFC 6891 §7). */
  | { kind: 'no-edns' }
  /** SERVFAIL, REFUSED, NOTIMP, ICMP unreachable, a socket error: this upstream is out for this question. */
  | { kind: 'failed' };

interface Try { cancel(): void }

/** The first usable answer (NOERROR or NXDOMAIN) from any upstream, or undefined when none came in time. */
export function exchange(q: Question, upstreams: Upstream[], o: ExchangeOptions): { result: Promise<Reply | undefined>; cancel(): void } {
  const tries = new Set<Try>();
  const out: Set<number> = new Set();
  const plain: Set<number> = new Set();
  let done = false;
  let retransmit: NodeJS.Timeout | undefined;
  let resolveResult!: (r: Reply | undefined) => void;
  const result = new Promise<Reply | undefined>((r) => (resolveResult = r));
  const finish = (r: Reply | undefined) => {
    if (done) return;
    done = true;
    clearTimeout(budget);
    clearTimeout(retransmit);
    for (const t of tries) t.cancel();
    tries.clear();
    resolveResult(r);
  };
  const budget = setTimeout(() => finish(undefined), o.budgetMs);
  const maxTries = Math.max(3, upstreams.length * 2);
  let sent = 0;
  let next = (o.first ?? 0) % Math.max(1, upstreams.length);
  let interval = o.retransmitMs;

  const settle = (t: Try, index: number, outcome: Outcome) => {
    tries.delete(t);
    if (done) return;
    switch (outcome.kind) {
      case 'answer':
        return finish(outcome.reply);
      case 'truncated': {
        const tcp = tcpTry(upstreams[index], index, q, (r) => settle(tcp, index, r ? { kind: 'answer', reply: r } : { kind: 'failed' }));
        tries.add(tcp);
        return;
      }
      case 'no-edns':
        plain.add(index);
        next = index;
        return launch();
      case 'failed':
        out.add(index);
        return launch();
    }
  };

  const launch = () => {
    clearTimeout(retransmit);
    if (done) return;
    let index = -1;
    for (let i = 0; i < upstreams.length; i++) {
      const k = (next + i) % upstreams.length;
      if (!out.has(k)) {
        index = k;
        break;
      }
    }
    if (index < 0 || sent >= maxTries) {
      // Nothing left to ask: wait for the tries still out, or give up now if there are none.
      if (!tries.size) finish(undefined);
      return;
    }
    sent++;
    next = index + 1;
    const t = udpTry(upstreams[index], index, q, !plain.has(index), o, (r) => settle(t, index, r));
    tries.add(t);
    retransmit = setTimeout(launch, interval);
    interval *= 2;
  };

  if (upstreams.length) launch();
  else finish(undefined);
  return { result, cancel: () => finish(undefined) };
}

function classify(buf: Buffer, parsed: ParsedResponse, upstream: Upstream, index: number, edns: boolean): Outcome {
  if (parsed.flags & FLAG.TC) return { kind: 'truncated' };
  if (parsed.rcode === RCODE.NOERROR || parsed.rcode === RCODE.NXDOMAIN) return { kind: 'answer', reply: { buf, parsed, upstream, index } };
  if (parsed.rcode === RCODE.FORMERR && edns && !parsed.records.some((r) => r.type === TYPE.OPT)) return { kind: 'no-edns' };
  return { kind: 'failed' };
}

function matches(p: ParsedResponse | undefined, id: number, q: Question): p is ParsedResponse {
  return !!p && p.id === id && p.qname === q.qname && p.qtype === q.qtype && p.qclass === q.qclass && p.questionEnd === HEADER_LEN + q.qnameWire.length + 4;
}

function udpTry(up: Upstream, index: number, q: Question, edns: boolean, o: ExchangeOptions, settle: (outcome: Outcome) => void): Try {
  const id = randomInt(65536);
  const query = buildQuery(id, q.qnameWire, q.qtype, q.qclass, { edns, dnssecOk: q.dnssecOk, checkingDisabled: q.checkingDisabled });
  const started = process.hrtime.bigint();
  const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
  const sock = createSocket(up.host.includes(':') ? 'udp6' : 'udp4');
  let ended = false;
  const end = (outcome: Outcome | undefined) => {
    if (ended) return;
    ended = true;
    try { sock.close(); } catch { /* already closed */ }
    if (outcome) {
      o.observe(seconds(), outcome.kind === 'failed' ? 'error' : 'ok');
      settle(outcome);
    } else {
      o.observe(seconds(), 'timeout');
    }
  };
  // ECONNREFUSED here is the ICMP port unreachable of a connected socket.
  sock.on('error', () => end({ kind: 'failed' }));
  sock.on('message', (msg) => {
    // The socket is connected: the kernel only delivers the upstream's datagrams. A wrong ID or
    // another question is spoofed or stray: keep waiting.
    const parsed = parseResponse(msg);
    if (matches(parsed, id, q)) end(classify(msg, parsed, up, index, edns));
  });
  try {
    // Connecting binds to port 0 first: a random ephemeral port for every try.
    sock.connect(up.port, up.host, () => {
      if (ended) return;
      sock.send(query, (err) => err && end({ kind: 'failed' }));
    });
  } catch {
    queueMicrotask(() => end({ kind: 'failed' }));
  }
  return { cancel: () => end(undefined) };
}

function tcpTry(up: Upstream, index: number, q: Question, settle: (r: Reply | undefined) => void): Try {
  const id = randomInt(65536);
  const query = buildQuery(id, q.qnameWire, q.qtype, q.qclass, { dnssecOk: q.dnssecOk, checkingDisabled: q.checkingDisabled });
  const sock = connect({ host: up.host, port: up.port });
  const chunks: Buffer[] = [];
  let have = 0;
  let ended = false;
  const end = (r: Reply | undefined, report = true) => {
    if (ended) return;
    ended = true;
    sock.destroy();
    if (report) settle(r);
  };
  sock.on('error', () => end(undefined));
  sock.on('close', () => end(undefined));
  sock.on('connect', () => {
    const frame = Buffer.allocUnsafe(2 + query.length);
    frame.writeUInt16BE(query.length, 0);
    query.copy(frame, 2);
    sock.write(frame);
  });
  sock.on('data', (d) => {
    chunks.push(d);
    have += d.length;
    if (have < 2) return;
    const buf = Buffer.concat(chunks);
    const len = buf.readUInt16BE(0);
    if (buf.length < 2 + len) return;
    const msg = Buffer.from(buf.subarray(2, 2 + len));
    const parsed = parseResponse(msg);
    if (!matches(parsed, id, q)) return end(undefined);
    const outcome = classify(msg, parsed, up, index, true);
    end(outcome.kind === 'answer' ? outcome.reply : undefined);
  });
  return { cancel: () => end(undefined, false) };
}
