// GCE wait_for_change long-polls. A waiter holds the ETag it was given and a way to re-render
// its resource; a registry change naming its VM re-renders, and a different ETag answers it.
// Bounded per VM and in total, so a guest cannot pile up sockets and timers.
import type { RegistryChange } from '../../registry/registry.js';
import type { Rendered } from '../render/rendered.js';

interface Waiter {
  vmKey: string;
  etag: string;
  current(): Rendered | undefined;
  done(r: Rendered | undefined): void;
  timer: NodeJS.Timeout;
}

export class Waiters {
  private readonly byVm = new Map<string, Set<Waiter>>();
  private total = 0;

  constructor(
    private readonly maxPerVm: number,
    private readonly maxTotal: number,
    private readonly onCount: (n: number) => void = () => {},
  ) {}

  get count(): number { return this.total; }

  /**
   * Resolves with the resource once its ETag differs from `etag` (undefined when the VM or the
   * resource vanished), or with the unchanged resource after `timeoutMs`. Returns 'full' when
   * the bounds are reached. `onAbort` registers a hook for a client that goes away.
   */
  wait(vmKey: string, etag: string, current: () => Rendered | undefined, timeoutMs: number,
    onAbort: (cancel: () => void) => void): Promise<Rendered | undefined> | 'full' {
    const set = this.byVm.get(vmKey);
    if (this.total >= this.maxTotal || (set?.size ?? 0) >= this.maxPerVm) return 'full';
    return new Promise((resolve) => {
      const w: Waiter = {
        vmKey, etag, current,
        done: (r) => {
          if (!this.remove(w)) return;
          clearTimeout(w.timer);
          resolve(r);
        },
        timer: setTimeout(() => w.done(current()), timeoutMs),
      };
      let s = this.byVm.get(vmKey);
      if (!s) this.byVm.set(vmKey, (s = new Set()));
      s.add(w);
      this.total++;
      this.onCount(this.total);
      onAbort(() => w.done(undefined));
    });
  }

  /** Re-checks the waiters of the VMs a change names (all of them on a reload). */
  wake(change: RegistryChange): void {
    const keys = change.all ? [...this.byVm.keys()] : change.vms;
    for (const key of keys) {
      const set = this.byVm.get(key);
      if (!set) continue;
      for (const w of [...set]) {
        const r = w.current();
        if (!r || r.etag !== w.etag) w.done(r);
      }
    }
  }

  /** Answers everyone with what they have now (shutdown). */
  flush(): void {
    for (const set of [...this.byVm.values()]) for (const w of [...set]) w.done(w.current());
  }

  private remove(w: Waiter): boolean {
    const set = this.byVm.get(w.vmKey);
    if (!set?.delete(w)) return false;
    if (set.size === 0) this.byVm.delete(w.vmKey);
    this.total--;
    this.onCount(this.total);
    return true;
  }
}
