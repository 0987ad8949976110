// DNS metrics. The hot path only bumps plain numbers; prom-client reads them at scrape time
// (label lookups per query would cost more than the answer itself).
import { Counter, Histogram, type Registry as PromRegistry } from 'prom-client';

const TYPE_NAMES: Record<number, string> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  43: 'DS', 48: 'DNSKEY', 64: 'SVCB', 65: 'HTTPS', 251: 'IXFR', 252: 'AXFR', 255: 'ANY',
};
const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export class DnsMetrics {
  /** (qtype << 5 | rcode) -> count; qtype 0 when no question was readable. */
  private readonly queries = new Map<number, number>();
  cacheHits = 0;
  cacheMisses = 0;
  /** Answers held back by response-rate limiting: dropped, or sent truncated (slipped). */
  readonly limited = { drop: 0, slip: 0 };
  private readonly upstream?: Histogram;

  constructor(register?: PromRegistry) {
    if (!register) return;
    const self = this;
    new Counter({
      name: 'uncloud_metadata_dns_queries_total', help: 'DNS queries answered, by question type and response code',
      labelNames: ['qtype', 'rcode'], registers: [register],
      collect() {
        this.reset();
        for (const [k, n] of self.queries) {
          const qtype = k >>> 5;
          const rcode = k & 31;
          this.inc({ qtype: TYPE_NAMES[qtype] ?? (qtype === 0 ? 'none' : 'other'), rcode: RCODE_NAMES[rcode] ?? String(rcode) }, n);
        }
      },
    });
    new Counter({
      name: 'uncloud_metadata_dns_cache_hits_total', help: 'Answers served from the wire-format answer cache', registers: [register],
      collect() { this.reset(); this.inc(self.cacheHits); },
    });
    new Counter({
      name: 'uncloud_metadata_dns_cache_misses_total', help: 'Queries that had to be built or forwarded', registers: [register],
      collect() { this.reset(); this.inc(self.cacheMisses); },
    });
    new Counter({
      name: 'uncloud_metadata_dns_rate_limited_total', help: 'Answers to clients outside the trusted set held back by response-rate limiting',
      labelNames: ['action'], registers: [register],
      collect() {
        this.reset();
        this.inc({ action: 'drop' }, self.limited.drop);
        this.inc({ action: 'slip' }, self.limited.slip);
      },
    });
    this.upstream = new Histogram({
      name: 'uncloud_metadata_dns_upstream_seconds', help: 'Latency of forwarded queries to upstream resolvers',
      labelNames: ['outcome'], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5], registers: [register],
    });
  }

  query(qtype: number, rcode: number): void {
    // Unknown qtypes share one slot so a scan over types cannot grow the map without bound.
    const k = ((TYPE_NAMES[qtype] ? qtype : 4095) << 5) | (rcode & 31);
    this.queries.set(k, (this.queries.get(k) ?? 0) + 1);
  }

  rateLimited(action: 'drop' | 'slip'): void {
    this.limited[action]++;
  }

  upstreamLatency(seconds: number, outcome: 'ok' | 'timeout' | 'error'): void {
    this.upstream?.observe({ outcome }, seconds);
  }
}
