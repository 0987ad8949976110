// Follows a key prefix in etcd: one paged range at revision R, then a watch from R+1.
//
// Failure paths, each named:
//  - stream drop: etcd3's watch manager reconnects with bounded backoff and resumes from the
//    last revision it saw; the sink keeps serving what it has ("connected" goes false).
//  - compaction: the watch is cancelled with a compacted revision; we reload everything at a
//    new revision and swap the sink atomically (reset), then watch again.
//  - store rewound (restored from a snapshot at an older revision, or a new cluster): the
//    probe sees a header revision below ours or a different cluster id; full reload. A restore
//    can also hide behind a higher revision (restored, then written past ours while we were cut
//    off; cluster id unchanged): so every watch reconnect after a drop reloads too.
//  - reload fails (etcd down): retried with backoff until it succeeds; the sink keeps its state.
import type { Watcher } from 'etcd3';
import type { Logger } from 'pino';
import type { KvChange, SourceHealth, StateSink, StateSource } from '../kv.js';
import { EtcdKv, toEntry } from './kv.js';

/**
 * Directories under the prefix a follower never needs: the writer's store-wide uniqueness claims
 * (keys.ts: macs/, addresses/). They are two thirds of the keys of a large store, so neither
 * loaded nor delivered.
 */
export const UNFOLLOWED_DIRS = ['macs/', 'addresses/'];

export interface EtcdSourceOptions {
  prefix: string;
  /** Sub-directories of `prefix` (with trailing slash) not to load or deliver; default UNFOLLOWED_DIRS. */
  skip?: string[];
  /** How often to check that the store was not rewound or replaced. */
  probeIntervalMs?: number;
  log: Logger;
}

export class EtcdSource implements StateSource {
  private sink?: StateSink;
  private watcher?: Watcher;
  private probeTimer?: NodeJS.Timeout;
  private reloadTimer?: NodeJS.Timeout;
  private closed = false;
  private clusterId?: string;
  private reloading?: Promise<void>;
  private reloadScheduled = false;
  /** The last load finished and its watch has not dropped since: only then is the state current. */
  private following = false;
  private readonly state: SourceHealth = { live: false, connected: false, revision: 0, reloads: 0, reconnects: 0 };
  /** Called after every successful apply/reset, for metrics and tests. */
  onRevision?: (revision: number, kind: 'reset' | 'apply') => void;

  private readonly skipped: string[];

  constructor(readonly kv: EtcdKv, private readonly opts: EtcdSourceOptions) {
    this.skipped = (opts.skip ?? UNFOLLOWED_DIRS).map((d) => opts.prefix + d).sort();
  }

  private followed(key: string): boolean {
    for (const s of this.skipped) if (key.startsWith(s)) return false;
    return true;
  }

  health(): SourceHealth {
    return { ...this.state };
  }

  /** Resolves after the first full load. Rejects if etcd cannot be read at all. */
  async start(sink: StateSink): Promise<void> {
    this.sink = sink;
    await this.load();
    const every = this.opts.probeIntervalMs ?? 2000;
    this.probeTimer = setInterval(() => void this.probe(), every);
    this.probeTimer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.probeTimer);
    clearTimeout(this.reloadTimer);
    await this.watcher?.cancel().catch(() => undefined);
  }

  private async load(): Promise<void> {
    const { entries, revision } = await this.kv.range(this.opts.prefix, this.skipped);
    if (this.closed) return;
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
    this.sink!.reset(entries, revision);
    this.state.revision = revision;
    this.state.connected = true;
    this.following = true;
    this.state.live = true;
    this.onRevision?.(revision, 'reset');
    await this.watchFrom(revision + 1);
  }

  private async watchFrom(revision: number): Promise<void> {
    if (await this.compactedPast(revision)) {
      this.opts.log.warn({ revision }, 'etcd revision compacted before the watch started; reloading');
      this.scheduleReload(0);
      return;
    }
    const watcher = await this.kv.client.watch().prefix(this.opts.prefix).startRevision(String(revision)).create();
    if (this.closed) {
      await watcher.cancel();
      return;
    }
    this.watcher = watcher;
    watcher.on('data', (res) => {
      if (watcher !== this.watcher) return;
      const changes: KvChange[] = [];
      for (const ev of res.events) {
        const key = ev.kv.key.toString();
        if (!this.followed(key)) continue;
        changes.push(ev.type === 'Delete'
          ? { key, value: undefined, modRevision: Number(ev.kv.mod_revision) }
          : { ...toEntry(ev.kv), value: ev.kv.value.toString() });
      }
      const rev = Number(res.header.revision);
      if (changes.length) this.sink!.apply(changes, rev);
      if (rev > this.state.revision) this.state.revision = rev;
      if (changes.length) this.onRevision?.(rev, 'apply');
    });
    let dropped = false;
    watcher.on('disconnected', (err: Error) => {
      if (watcher !== this.watcher) return;
      this.state.connected = false;
      this.following = false;
      this.state.lastError = err.message;
      if (dropped) return; // every retry of the stream reports again: count and log the outage once
      dropped = true;
      this.state.reconnects++;
      this.opts.log.warn({ err: err.message }, 'etcd watch disconnected; serving last known state');
    });
    watcher.on('connected', () => {
      if (watcher !== this.watcher) return;
      if (dropped) {
        // While we were cut off, etcd may have been restored from a snapshot and written past our
        // revision since (same cluster id, higher revision): the resumed watch would then skip
        // those writes silently and no probe could tell. One consistent re-read settles it.
        this.opts.log.info('etcd watch reconnected; reloading (the store may have been rewound meanwhile)');
        this.scheduleReload(0);
        return;
      }
      this.state.connected = true;
    });
    watcher.on('error', (err: Error) => {
      if (watcher !== this.watcher) return;
      // A cancelled watch is not resumed by the library: compaction is the common cause (etcd
      // 3.4 cancels with an empty reason and only a compact_revision).
      this.state.lastError = err.message;
      this.opts.log.warn({ err: err.message }, 'etcd watch cancelled (its revision was compacted, most likely); reloading');
      this.scheduleReload(0);
    });
  }

  /**
   * Whether `revision` can no longer be watched from. etcd3 1.1.2 does not surface a watch that
   * etcd cancels at creation for compaction: it throws "Failed to find watcher" from its stream
   * handler instead, outside our reach. Reading at the revision first turns that into a reload
   * (a compaction landing between this check and the watch remains a narrow window).
   */
  private async compactedPast(revision: number): Promise<boolean> {
    try {
      await this.kv.client.kv.range({ key: Buffer.from(this.opts.prefix), count_only: true, revision: String(revision) });
      return false;
    } catch (err) {
      return /compacted/i.test((err as Error).message);
    }
  }

  /** Reload everything, retrying with backoff while etcd is away. */
  private scheduleReload(attempt: number): void {
    if (this.closed || this.reloading || this.reloadScheduled) return;
    this.reloadScheduled = true;
    this.following = false;
    // The old watch must end on the server too, or every rewind would leak one.
    const old = this.watcher;
    this.watcher = undefined;
    void old?.cancel().catch(() => undefined);
    const delay = attempt === 0 ? 0 : Math.min(100 * 2 ** attempt, 2000);
    this.reloadTimer = setTimeout(() => {
      this.reloadScheduled = false;
      this.reloading = this.load().then(
        () => {
          this.state.reloads++;
          this.reloading = undefined;
        },
        (err: Error) => {
          this.reloading = undefined;
          this.state.connected = false;
          this.state.lastError = err.message;
          this.scheduleReload(attempt + 1);
        },
      );
    }, delay);
  }

  /** Detects a rewound or replaced store, and keeps `connected` honest while idle. */
  private async probe(): Promise<void> {
    if (this.closed || this.reloading) return;
    try {
      const res = await this.kv.client.kv.range({ key: Buffer.from(this.opts.prefix), count_only: true });
      const clusterId = String(res.header.cluster_id);
      const revision = Number(res.header.revision);
      const replaced = this.clusterId !== undefined && this.clusterId !== clusterId;
      this.clusterId = clusterId;
      this.state.storeRevision = revision;
      // etcd answering is not enough: until the watch is back (and the reload after it is done)
      // the state may be stale, and /readyz must keep saying "degraded".
      this.state.connected = this.following;
      if (replaced || revision < this.state.revision) {
        this.opts.log.warn({ revision, ours: this.state.revision, replaced }, 'etcd was rewound or replaced; reloading');
        this.scheduleReload(0);
      }
    } catch (err) {
      this.state.connected = false;
      this.state.lastError = (err as Error).message;
    }
  }
}
