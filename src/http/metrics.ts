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
    new Counter({
      name: 'uncloud_metadata_http_identity_failures_total', help: 'Requests whose source address matched no VM, by reason',
      labelNames: ['reason'], registers: [register],
      collect() {
        this.reset();
        for (const [reason, n] of self.identityFailures) this.inc({ reason }, n);
      },
    });
    new Counter({
      name: 'uncloud_metadata_http_identity_total', help: 'Requests whose VM was identified, by identity step (address: exact source address; linklocal: EUI-64 link-local on the network\'s bridge)',
      labelNames: ['by'], registers: [register],
      collect() {
        this.reset();
        this.inc({ by: 'address' }, self.byAddress);
        for (const [by, n] of self.identities) this.inc({ by }, n);
      },
    });
    new Counter({
      name: 'uncloud_metadata_http_refused_spoofs_total', help: 'Refused spoof attempts: source in a served prefix matching no VM, proxy headers, foreign Host',
      labelNames: ['reason'], registers: [register],
      collect() {
        this.reset();
        for (const [reason, n] of self.refusals) this.inc({ reason }, n);
      },
    });
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
    else this.identities.set(by, (this.identities.get(by) ?? 0) + 1);
  }

  refused(reason: string): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }

  identityFailure(reason: string): void {
    this.identityFailures.set(reason, (this.identityFailures.get(reason) ?? 0) + 1);
  }
}
