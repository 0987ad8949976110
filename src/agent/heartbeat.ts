// The host's heartbeat: hosts/<host> bound to an etcd lease, so it disappears on its own when
// the agent dies or loses the store; re-granted when the lease is lost. A file store has no
// leases: the record is written and removed on a clean stop.
import type { Logger } from 'pino';
import type { Lease } from 'etcd3';
import type { Kv } from '../store/kv.js';
import type { Keys } from '../store/keys.js';
import { EtcdKv } from '../store/etcd/kv.js';
import { HostSchema, type Host } from '../model/schema.js';

export interface HeartbeatOptions {
  kv: Kv;
  keys: Keys;
  host: string;
  version: string;
  ttlSeconds?: number;
  log: Logger;
}

export class Heartbeat {
  private lease?: Lease;
  private leaseId?: string;
  private vms = 0;
  private readonly since = new Date().toISOString();
  private stopped = false;
  private retry?: NodeJS.Timeout;

  constructor(private readonly opts: HeartbeatOptions) {}

  async start(): Promise<void> {
    await this.publish().catch((err) => this.fail(err));
  }

  /** Records how many VMs this host runs (re-written only when it changes). */
  async setVmCount(n: number): Promise<void> {
    if (n === this.vms) return;
    this.vms = n;
    await this.publish().catch((err) => this.fail(err));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const { kv, keys, host } = this.opts;
    if (this.lease) await this.lease.revoke().catch(() => undefined);
    else await kv.txn({ compares: [], puts: [], deletes: [keys.host(host)] }).catch(() => undefined);
  }

  private record(): Host {
    return HostSchema.parse({ v: 1, name: this.opts.host, since: this.since, version: this.opts.version, vms: this.vms });
  }

  private async publish(): Promise<void> {
    if (this.stopped) return;
    const { kv, keys, host } = this.opts;
    if (kv instanceof EtcdKv && !this.leaseId) {
      const lease = kv.client.lease(this.opts.ttlSeconds ?? 10, { autoKeepAlive: true });
      lease.on('lost', (err) => {
        if (this.lease !== lease) return;
        this.opts.log.warn({ err: err.message }, 'host lease lost; re-granting');
        this.lease = undefined;
        this.leaseId = undefined;
        this.scheduleRetry();
      });
      this.lease = lease;
      this.leaseId = await lease.grant();
    }
    await kv.txn({ compares: [], puts: [{ key: keys.host(host), value: JSON.stringify(this.record()), lease: this.leaseId }], deletes: [] });
  }

  private fail(err: unknown): void {
    this.opts.log.warn({ err: (err as Error).message }, 'host heartbeat not written; retrying');
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.stopped) return;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => void this.publish().catch((e) => this.fail(e)), 1000);
    this.retry.unref();
  }
}
