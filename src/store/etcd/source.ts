// Follows key ranges in etcd (keys.ts: what an appliance or an agent may read): every range read
// at one revision R (paged), then one watch per range from R+1, all on the client's one stream.
// Nothing outside the ranges is read or delivered, so a change there costs nothing.
//
// Access: a range the client's etcd role may not read fails the first load with StoreAccessError,
// naming the range; that is a configuration error, not an outage, and is not retried.
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
import type { KvChange, KvEntry, SourceHealth, StateSink, StateSource } from '../kv.js';
import { StoreAccessError } from '../kv.js';
import { describeRange, type KeyRange } from '../keys.js';
import { EtcdKv, prefixEnd, toEntry } from './kv.js';

export interface EtcdSourceOptions {
  /** What to read and follow (Keys.applianceRanges, Keys.agentRanges). */
  ranges: KeyRange[];
  /** How often to check that the store was not rewound or replaced. */
  probeIntervalMs?: number;
  log: Logger;
}

export class EtcdSource implements StateSource {
  private sink?: StateSink;
  /** The watches of the current load, one per range; a newer load replaces the whole set. */
  private watchers?: Watcher[];
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

  constructor(readonly kv: EtcdKv, private readonly opts: EtcdSourceOptions) {
    if (!opts.ranges.length) throw new Error('EtcdSource needs at least one key range');
  }

  /** A key every role that may follow these ranges can read: for probes. */
  private get probeKey(): Buffer {
    return Buffer.from(this.opts.ranges[0].key);
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
    await this.cancelWatches();
  }

  private async cancelWatches(): Promise<void> {
    const old = this.watchers;
    this.watchers = undefined;
    await Promise.all((old ?? []).map((w) => w.cancel().catch(() => undefined)));
  }

  /** Every range at one revision (the first range's read fixes it). */
  private async read(): Promise<{ entries: KvEntry[]; revision: number }> {
    const entries: KvEntry[] = [];
    let revision = 0;
    for (const r of this.opts.ranges) {
      const end = r.prefix ? prefixEnd(r.key) : Buffer.concat([Buffer.from(r.key), Buffer.from([0])]);
      try {
        revision = await this.kv.rangeInto(entries, Buffer.from(r.key), end, revision);
      } catch (err) {
        if (/permission denied/i.test((err as Error).message)) throw new StoreAccessError(this.kv.description, describeRange(r), err);
        throw err;
      }
    }
    return { entries, revision };
  }

  private async load(): Promise<void> {
    const { entries, revision } = await this.read();
    if (this.closed) return;
    await this.cancelWatches();
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
    const watchers: Watcher[] = [];
    for (const r of this.opts.ranges) {
      const builder = this.kv.client.watch();
      watchers.push(await (r.prefix ? builder.prefix(r.key) : builder.key(r.key)).startRevision(String(revision)).create());
    }
    if (this.closed) {
      await Promise.all(watchers.map((w) => w.cancel()));
      return;
    }
    this.watchers = watchers;
    // The watches share one stream: it drops and comes back for all of them at once.
    let dropped = false;
    const current = () => this.watchers === watchers;
    for (const watcher of watchers) {
      watcher.on('data', (res) => {
        if (!current()) return;
        const changes: KvChange[] = res.events.map((ev) => ev.type === 'Delete'
          ? { key: ev.kv.key.toString(), value: undefined, modRevision: Number(ev.kv.mod_revision) }
          : { ...toEntry(ev.kv), value: ev.kv.value.toString() });
        const rev = Number(res.header.revision);
        if (changes.length) this.sink!.apply(changes, rev);
        if (rev > this.state.revision) this.state.revision = rev;
        if (changes.length) this.onRevision?.(rev, 'apply');
      });
      watcher.on('disconnected', (err: Error) => {
        if (!current()) return;
        this.state.connected = false;
        this.following = false;
        this.state.lastError = err.message;
        if (dropped) return; // every retry of the stream reports again: count and log the outage once
        dropped = true;
        this.state.reconnects++;
        this.opts.log.warn({ err: err.message }, 'etcd watch disconnected; serving last known state');
      });
      watcher.on('connected', () => {
        if (!current()) return;
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
        if (!current()) return;
        // A cancelled watch is not resumed by the library: compaction is the common cause (etcd
        // 3.4 cancels with an empty reason and only a compact_revision).
        this.state.lastError = err.message;
        this.opts.log.warn({ err: err.message }, 'etcd watch cancelled (its revision was compacted, most likely); reloading');
        this.scheduleReload(0);
      });
    }
  }

  /**
   * Whether `revision` can no longer be watched from. etcd3 1.1.2 does not surface a watch that
   * etcd cancels at creation for compaction: it throws "Failed to find watcher" from its stream
   * handler instead, outside our reach. Reading at the revision first turns that into a reload
   * (a compaction landing between this check and the watch remains a narrow window).
   */
  private async compactedPast(revision: number): Promise<boolean> {
    try {
      await this.kv.client.kv.range({ key: this.probeKey, count_only: true, revision: String(revision) });
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
    // The old watches must end on the server too, or every rewind would leak them.
    void this.cancelWatches();
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
      const res = await this.kv.client.kv.range({ key: this.probeKey, count_only: true });
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
