// HTTP metrics. The hot path bumps plain numbers in maps; prom-client reads them at scrape time
// (a labelled inc per request would cost a visible share of a metadata answer).
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';

export class HttpMetrics {
  /** route -> counts indexed by status code (a typed array: one increment, no allocation) */
  private readonly requests = new Map<string, Float64Array>();
  /** reason -> count */
  private readonly identityFailures = new Map<string, number>();
  /** identity step -> count */
  private readonly identities = new Map<string, number>();
  /** spoof reason -> count */
  private readonly refusals = new Map<string, number>();
  /** Requests served by exact address: the hot path's step, a plain number. */
  byAddress = 0;
  waiters = 0;

  constructor(register?: PromRegistry) {
    if (!register) return;
    const self = this;
    new Counter({
      name: 'uncloud_metadata_http_requests_total', help: 'Metadata HTTP requests answered, by route (flavour) and status',
      labelNames: ['route', 'status'], registers: [register],
      collect() {
        this.reset();
        for (const [route, counts] of self.requests) {
          counts.forEach((n, status) => { if (n) this.inc({ route, status: String(status) }, n); });
        }
      },
    });
    countedBy(register, 'uncloud_metadata_http_identity_failures_total', 'Requests whose source address matched no VM, by reason',
      'reason', () => self.identityFailures);
    countedBy(register, 'uncloud_metadata_http_identity_total', 'Requests whose VM was identified, by identity step (address: exact source address; linklocal: EUI-64 link-local on the network\'s bridge)',
      'by', () => [['address', self.byAddress], ...self.identities]);
    countedBy(register, 'uncloud_metadata_http_refused_spoofs_total', 'Refused spoof attempts: source in a served prefix matching no VM, proxy headers, foreign Host',
      'reason', () => self.refusals);
    new Gauge({
      name: 'uncloud_metadata_http_waiters', help: 'GCE wait_for_change long-poll requests waiting now', registers: [register],
      collect() { this.set(self.waiters); },
    });
  }

  request(route: string, status: number): void {
    let counts = this.requests.get(route);
    if (!counts) this.requests.set(route, (counts = new Float64Array(600)));
    counts[status < 600 ? status : 599]++;
  }

  identified(by: 'address' | 'linklocal'): void {
    if (by === 'address') this.byAddress++;
    else bump(this.identities, by);
  }

  refused(reason: string): void {
    bump(this.refusals, reason);
  }

  identityFailure(reason: string): void {
    bump(this.identityFailures, reason);
  }
}

const bump = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);

/** A counter with one label, read at scrape time from counts the hot path keeps. */
function countedBy(register: PromRegistry, name: string, help: string, label: string, counts: () => Iterable<[string, number]>): void {
  new Counter({
    name, help, labelNames: [label], registers: [register],
    collect() {
      this.reset();
      for (const [value, n] of counts()) this.inc({ [label]: value }, n);
    },
  });
}
