// Forwarding to upstream resolvers, with a cache that honours TTLs (RFC 2308 for negative
// answers). Each upstream query gets a random ID and its own socket on a kernel-chosen random
// port; a reply counts only if it comes from the upstream we asked and matches the question
// (ID, name, type, class). Identical questions in flight share one upstream query.
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { parseHostPort } from '../model/ip.js';
import { HEADER_LEN, RCODE, TYPE, buildQuery, parseResponse, type ParsedResponse } from './wire.js';
import type { DnsMetrics } from './metrics.js';

export interface Upstream { host: string; port: number }

/** An upstream answer ready to serve: no OPT, ID zero, TTL positions known. */
export interface CachedAnswer {
  core: Buffer;
  rcode: number;
  /** Offsets (in `core`) and original values of every TTL, decremented as the entry ages. */
  ttlOffsets: number[];
  ttls: number[];
  storedAt: number;
  /** ms since epoch; `storedAt` when it must not be cached. */
  expiresAt: number;
}

export interface ForwarderOptions {
  log: Logger;
  metrics: DnsMetrics;
  /** Per upstream attempt. */
  timeoutMs?: number;
  maxTtl?: number;
  maxEntries?: number;
  /** Distinct questions waiting on upstreams at once; beyond it, SERVFAIL at once (a flood of unique names must not exhaust sockets). */
  maxInflight?: number;
}

export function parseUpstreams(list: string[]): Upstream[] {
  return list.map((s) => {
    const hp = parseHostPort(s, 53);
    if (!hp) throw new Error(`upstream "${s}" is not ADDR[:PORT] or [V6]:PORT`);
    return hp;
  });
}

export class Forwarder {
  private readonly cache = new Map<string, CachedAnswer>();
  private readonly inflight = new Map<string, Promise<CachedAnswer>>();
  private readonly sockets = new Set<Socket>();
  private readonly timeoutMs: number;
  private readonly maxTtl: number;
  private readonly maxEntries: number;
  private closed = false;

  constructor(private readonly opts: ForwarderOptions) {
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.maxTtl = opts.maxTtl ?? 86400;
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  /**
   * The answer for a question (qnameWire lower-cased), from cache or upstream. `group` names the
   * upstream set, so networks with their own upstreams never share entries with others.
   */
  resolve(qnameWire: Buffer, qname: string, qtype: number, qclass: number, upstreams: Upstream[], group: string): Promise<CachedAnswer> {
    const key = `${group}|${qname}|${qtype}|${qclass}`;
    const hit = this.cache.get(key);
    if (hit && hit.expiresAt > Date.now()) return Promise.resolve(hit);
    if (hit) this.cache.delete(key);
    let p = this.inflight.get(key);
    if (!p && this.inflight.size >= (this.opts.maxInflight ?? 2048)) return Promise.resolve(this.servfail(qnameWire, qtype, qclass));
    if (!p) {
      p = this.ask(qnameWire, qname, qtype, qclass, upstreams).then((a) => {
        if (a.expiresAt > a.storedAt) {
          if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
          this.cache.set(key, a);
        }
        return a;
      }).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  close(): void {
    this.closed = true;
    for (const s of this.sockets) s.close();
    this.sockets.clear();
  }

  private async ask(qnameWire: Buffer, qname: string, qtype: number, qclass: number, upstreams: Upstream[]): Promise<CachedAnswer> {
    for (const up of upstreams) {
      if (this.closed) break;
      const started = process.hrtime.bigint();
      const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
      try {
        let wire = await this.askUdp(up, qnameWire, qname, qtype, qclass);
        // Truncated upstream answer: ask again over TCP so the cache holds the whole thing.
        if (wire && wire.parsed.flags & 0x0200) wire = await this.askTcp(up, qnameWire, qname, qtype, qclass);
        if (!wire) {
          this.opts.metrics.upstreamLatency(seconds(), 'timeout');
          continue;
        }
        this.opts.metrics.upstreamLatency(seconds(), 'ok');
        if (wire.parsed.rcode === RCODE.SERVFAIL || wire.parsed.rcode === RCODE.REFUSED || wire.parsed.rcode === RCODE.NOTIMP) continue;
        return this.prepare(wire.buf, wire.parsed);
      } catch (err) {
        this.opts.metrics.upstreamLatency(seconds(), 'error');
        this.opts.log.debug({ upstream: up, err: (err as Error).message }, 'upstream query failed');
      }
    }
    return this.servfail(qnameWire, qtype, qclass);
  }

  private matches(p: ParsedResponse | undefined, id: number, qname: string, qtype: number, qclass: number, questionEnd: number): p is ParsedResponse {
    return !!p && p.id === id && p.qname === qname && p.qtype === qtype && p.qclass === qclass && p.questionEnd === questionEnd;
  }

  private askUdp(up: Upstream, qnameWire: Buffer, qname: string, qtype: number, qclass: number): Promise<{ buf: Buffer; parsed: ParsedResponse } | undefined> {
    const id = randomInt(65536);
    const query = buildQuery(id, qnameWire, qtype, qclass);
    const questionEnd = HEADER_LEN + qnameWire.length + 4;
    const v6 = up.host.includes(':');
    return new Promise((resolve) => {
      const sock = createSocket(v6 ? 'udp6' : 'udp4');
      this.sockets.add(sock);
      let done = false;
      const finish = (r: { buf: Buffer; parsed: ParsedResponse } | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.sockets.delete(sock);
        try { sock.close(); } catch { /* already closed */ }
        resolve(r);
      };
      const timer = setTimeout(() => finish(undefined), this.timeoutMs);
      sock.on('error', () => finish(undefined));
      sock.on('close', () => finish(undefined));
      sock.on('message', (msg, rinfo) => {
        // Spoofed or stray: wrong peer, wrong ID or another question. Keep waiting.
        if (rinfo.port !== up.port || normalize(rinfo.address) !== up.host) return;
        const parsed = parseResponse(msg);
        if (this.matches(parsed, id, qname, qtype, qclass, questionEnd)) finish({ buf: msg, parsed });
      });
      // Port 0: the kernel picks a random ephemeral port for every query.
      sock.bind(0, v6 ? '::' : '0.0.0.0', () => {
        // Under load the timeout can fire before the bind completes: never send on a closed socket.
        if (done) return;
        try {
          sock.send(query, up.port, up.host, (err) => err && finish(undefined));
        } catch {
          finish(undefined);
        }
      });
    });
  }

  private askTcp(up: Upstream, qnameWire: Buffer, qname: string, qtype: number, qclass: number): Promise<{ buf: Buffer; parsed: ParsedResponse } | undefined> {
    const id = randomInt(65536);
    const query = buildQuery(id, qnameWire, qtype, qclass);
    const questionEnd = HEADER_LEN + qnameWire.length + 4;
    return new Promise((resolve) => {
      const sock = connect({ host: up.host, port: up.port });
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (r: { buf: Buffer; parsed: ParsedResponse } | undefined) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => finish(undefined), this.timeoutMs);
      sock.on('error', () => finish(undefined));
      sock.on('close', () => finish(undefined));
      sock.on('connect', () => {
        const len = Buffer.alloc(2);
        len.writeUInt16BE(query.length);
        sock.write(Buffer.concat([len, query]));
      });
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2) return;
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) return;
        const msg = buf.subarray(2, 2 + len);
        const parsed = parseResponse(msg);
        finish(this.matches(parsed, id, qname, qtype, qclass, questionEnd) ? { buf: Buffer.from(msg), parsed } : undefined);
      });
    });
  }

  /** Strips the upstream's OPT, zeroes the ID, and works out how long the answer may be cached. */
  private prepare(buf: Buffer, p: ParsedResponse): CachedAnswer {
    let records = p.records;
    let end = buf.length;
    const firstOpt = records.findIndex((r) => r.type === TYPE.OPT);
    let arcount = buf.readUInt16BE(10);
    if (firstOpt >= 0) {
      // Drop the OPT and anything after it in the additional section: names after it may
      // point into bytes we cut, and additional data is optional anyway.
      const dropped = records.length - firstOpt;
      end = records[firstOpt].start;
      records = records.slice(0, firstOpt);
      arcount -= dropped;
    }
    const core = Buffer.from(buf.subarray(0, end));
    core.writeUInt16BE(0, 0);
    core.writeUInt16BE(arcount, 10);
    const now = Date.now();
    let ttl = 0;
    const answers = records.filter((r) => r.section === 'answer');
    if (p.rcode === RCODE.NOERROR && answers.length) {
      ttl = Math.min(...records.map((r) => r.ttl));
    } else if (p.rcode === RCODE.NXDOMAIN || p.rcode === RCODE.NOERROR) {
      // RFC 2308: negative answers are cached for min(SOA TTL, SOA MINIMUM); without a SOA, not at all.
      const soa = records.find((r) => r.section === 'authority' && r.type === TYPE.SOA);
      if (soa && soa.rdlength >= 20) ttl = Math.min(soa.ttl, buf.readUInt32BE(soa.rdataOffset + soa.rdlength - 4));
    }
    ttl = Math.max(0, Math.min(ttl, this.maxTtl));
    return {
      core, rcode: p.rcode, ttlOffsets: records.map((r) => r.ttlOffset), ttls: records.map((r) => Math.min(r.ttl, this.maxTtl)),
      storedAt: now, expiresAt: now + ttl * 1000,
    };
  }

  private servfail(qnameWire: Buffer, qtype: number, qclass: number): CachedAnswer {
    const core = Buffer.alloc(HEADER_LEN + qnameWire.length + 4);
    core.writeUInt16BE(0x8180 | RCODE.SERVFAIL, 2);
    core.writeUInt16BE(1, 4);
    qnameWire.copy(core, HEADER_LEN);
    core.writeUInt16BE(qtype, HEADER_LEN + qnameWire.length);
    core.writeUInt16BE(qclass, HEADER_LEN + qnameWire.length + 2);
    const now = Date.now();
    return { core, rcode: RCODE.SERVFAIL, ttlOffsets: [], ttls: [], storedAt: now, expiresAt: now };
  }
}

function normalize(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
