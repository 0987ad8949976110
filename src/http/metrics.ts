// HTTP metrics. The hot path bumps plain numbers in maps; prom-client reads them at scrape time
// (a labelled inc per request would cost a visible share of a metadata answer).
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';

export class HttpMetrics {
  /** route -> counts indexed by status code (a typed array: one increment, no allocation) */
  private readonly requests = new Map<string, Float64Array>();
  /** reason -> count */
  private readonly identityFailures = new Map<string, number>();
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

  identityFailure(reason: string): void {
    this.identityFailures.set(reason, (this.identityFailures.get(reason) ?? 0) + 1);
  }
}
