// Forwarding to upstream resolvers, with a cache that honours TTLs (RFC 2308 for negative
// answers, RFC 9520 for failures). The exchange with the upstreams (retries, failover, TCP and
// plain-DNS fallback) is in upstream-exchange.ts; a reply counts only if it comes from the
// upstream we asked and matches the question (ID, name, type, class). Identical questions in
// flight share one exchange. Entries are kept per DO and CD: a validating client's answer
// carries signatures (and, with CD, possibly data the upstream could not validate).
import type { Logger } from 'pino';
import { parseHostPort } from '../model/ip.js';
import { failureAnswer, prepareAnswer, type CachedAnswer } from './forwarded-answer.js';
import type { DnsMetrics } from './metrics.js';
import { exchange, type Question, type Upstream } from './upstream-exchange.js';

export type { CachedAnswer } from './forwarded-answer.js';
export type { Question, Upstream } from './upstream-exchange.js';

export interface ForwarderOptions {
  log: Logger;
  metrics: DnsMetrics;
  /** How long one question may wait for the upstreams in all (late answers included), default 5000 ms. */
  timeoutMs?: number;
  /** First retransmission to the next upstream, default 800 ms; doubles after each. */
  retransmitMs?: number;
  /** How long a resolution failure (SERVFAIL) is remembered, default 5000 ms (RFC 9520: 1 s to 5 min). */
  failureTtlMs?: number;
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
  private readonly exchanges = new Set<{ cancel(): void }>();
  /** Per upstream set: the upstream that answered last, asked first next time (a dead first upstream costs one retransmission interval once, not on every question). */
  private readonly preferred = new Map<string, number>();
  private readonly timeoutMs: number;
  private readonly retransmitMs: number;
  private readonly failureTtlMs: number;
  private readonly maxTtl: number;
  private readonly maxEntries: number;
  private closed = false;

  constructor(private readonly opts: ForwarderOptions) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.retransmitMs = opts.retransmitMs ?? Math.min(800, this.timeoutMs / 4);
    this.failureTtlMs = opts.failureTtlMs ?? 5000;
    this.maxTtl = opts.maxTtl ?? 86400;
    this.maxEntries = opts.maxEntries ?? 100_000;
  }

  /** The cached answer for a question, if there is a live one (RD=0 queries get only this). */
  cached(q: Question, group: string): CachedAnswer | undefined {
    const hit = this.cache.get(key(q, group));
    return hit && hit.expiresAt > Date.now() ? hit : undefined;
  }

  /**
   * The answer for a question, from cache or upstream. `group` names the upstream set, so
   * networks with their own upstreams never share entries with others.
   */
  resolve(q: Question, upstreams: Upstream[], group: string): Promise<CachedAnswer> {
    const k = key(q, group);
    const hit = this.cache.get(k);
    if (hit && hit.expiresAt > Date.now()) return Promise.resolve(hit);
    if (hit) this.cache.delete(k);
    let p = this.inflight.get(k);
    if (!p && (this.closed || this.inflight.size >= (this.opts.maxInflight ?? 2048))) {
      return Promise.resolve(failureAnswer(q.qnameWire, q.qtype, q.qclass, Date.now(), 0));
    }
    if (!p) {
      p = this.ask(q, upstreams, group).then((a) => {
        if (a.expiresAt > a.storedAt) {
          if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
          this.cache.set(k, a);
        }
        return a;
      }).finally(() => this.inflight.delete(k));
      this.inflight.set(k, p);
    }
    return p;
  }

  close(): void {
    this.closed = true;
    for (const x of this.exchanges) x.cancel();
    this.exchanges.clear();
  }

  private async ask(q: Question, upstreams: Upstream[], group: string): Promise<CachedAnswer> {
    const metrics = this.opts.metrics;
    const x = exchange(q, upstreams, {
      budgetMs: this.timeoutMs, retransmitMs: this.retransmitMs, observe: (s, outcome) => metrics.upstreamLatency(s, outcome),
      first: this.preferred.get(group),
    });
    this.exchanges.add(x);
    const reply = await x.result;
    this.exchanges.delete(x);
    const now = Date.now();
    if (!reply) {
      this.opts.log.debug({ qname: q.qname, qtype: q.qtype, upstreams }, 'no upstream answered');
      return failureAnswer(q.qnameWire, q.qtype, q.qclass, now, this.closed ? 0 : this.failureTtlMs);
    }
    if (this.preferred.size > 10_000) this.preferred.clear();
    this.preferred.set(group, reply.index);
    return prepareAnswer(reply.buf, reply.parsed, this.maxTtl, now);
  }
}

function key(q: Question, group: string): string {
  return `${group}|${q.qname}|${q.qtype}|${q.qclass}|${q.dnssecOk ? 'd' : ''}${q.checkingDisabled ? 'c' : ''}`;
}
