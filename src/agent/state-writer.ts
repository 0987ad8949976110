// The agent's reports back to the store: one VmState record per VM it runs, written only when it
// changed, and deleted on retire only while it still names this host.
import type { Logger } from 'pino';
import type { OpenedStore } from '../store/open.js';
import { VmStateSchema, type VmState } from '../model/schema.js';
import type { Managed } from './managed.js';

export class VmStateWriter {
  private readonly written = new Map<string, string>();

  constructor(private readonly store: OpenedStore, private readonly host: string, private readonly log: Logger) {}

  text(m: Managed): string {
    const s: VmState = VmStateSchema.parse({
      v: 1, host: this.host, state: m.state, pid: m.state === 'running' ? m.pid : undefined,
      since: m.since, restarts: m.restarts, lastError: m.lastError,
    });
    return JSON.stringify(s);
  }

  /** True when the store already holds what `m` says (as far as this agent wrote it). */
  upToDate(m: Managed): boolean {
    return this.written.get(m.key) === this.text(m);
  }

  async write(m: Managed): Promise<void> {
    const text = this.text(m);
    if (this.written.get(m.key) === text) return;
    const { kv, keys } = this.store;
    try {
      await kv.txn({ compares: [], puts: [{ key: keys.vmState(this.host, m.network, m.name), value: text }], deletes: [] });
      this.written.set(m.key, text);
    } catch (err) {
      this.log.warn({ vm: m.key, err: (err as Error).message }, 'VM state not written; the sweep retries');
    }
  }

  /** Deletes the VM's state only while it still says this host (the VM may run elsewhere now). */
  async clear(network: string, name: string): Promise<void> {
    const { kv, keys } = this.store;
    const key = keys.vmState(this.host, network, name);
    this.written.delete(`${network}/${name}`);
    const entry = await kv.get(key);
    if (!entry) return;
    try {
      if ((JSON.parse(entry.value) as { host?: string }).host !== this.host) return;
    } catch { /* unreadable: ours to clean */ }
    await kv.txn({ compares: [{ key, modRevision: entry.modRevision }], puts: [], deletes: [key] });
  }
}
