// Evidence of refused spoofs the appliance can see: a source inside a served prefix that is no
// VM's, a proxy header, a Host naming someone else. Each is counted, and logged as a warning at
// most `burst` times per `windowMs` per reason (a guest must not be able to flood the log); the
// lines carry the reason and the source address, never a header value, path or user data.
import type { Logger } from 'pino';
import type { HttpMetrics } from './metrics.js';

export type SpoofReason = 'unknown-source' | 'proxy-header' | 'bad-host';

export class SpoofLog {
  private readonly windows = new Map<SpoofReason, { start: number; logged: number; suppressed: number }>();

  constructor(
    private readonly log: Logger,
    private readonly metrics: HttpMetrics,
    private readonly burst = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  refused(reason: SpoofReason, source: string | undefined, route: string): void {
    this.metrics.refused(reason);
    const t = this.now();
    let w = this.windows.get(reason);
    if (!w || t - w.start >= this.windowMs) {
      if (w?.suppressed) this.log.warn({ reason, suppressed: w.suppressed }, 'refused spoofed metadata requests (not logged one by one)');
      w = { start: t, logged: 0, suppressed: 0 };
      this.windows.set(reason, w);
    }
    if (w.logged < this.burst) {
      w.logged++;
      this.log.warn({ reason, source, route }, 'refused spoofed metadata request');
    } else {
      w.suppressed++;
    }
  }
}
