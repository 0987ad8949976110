// Follows the state file: inotify on its folder (the file is replaced by rename, so watching the
// file itself would go deaf), re-read on change, and deliver only what differs within the ranges.
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { KvChange, KvEntry, SourceHealth, StateSink, StateSource } from '../kv.js';
import { entryOf, readState } from './kv.js';
import { inRange, type KeyRange } from '../keys.js';

export class FileSource implements StateSource {
  private watcher?: FSWatcher;
  private timer?: NodeJS.Timeout;
  private current = new Map<string, KvEntry>();
  private readonly state: SourceHealth = { live: false, connected: false, revision: 0, reloads: 0, reconnects: 0 };

  constructor(readonly path: string, private readonly ranges: KeyRange[], private readonly log: Logger) {}

  health(): SourceHealth {
    return { ...this.state };
  }

  async start(sink: StateSink): Promise<void> {
    const first = this.read();
    sink.reset([...first.values()], this.state.revision);
    this.current = first;
    this.state.live = this.state.connected = true;
    this.watcher = watch(dirname(this.path), (_event, name) => {
      if (name && name !== basename(this.path)) return;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.reload(sink), 10);
    });
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.watcher?.close();
  }

  private read(): Map<string, KvEntry> {
    const state = readState(this.path);
    this.state.revision = state.revision;
    const map = new Map<string, KvEntry>();
    for (const [k, e] of Object.entries(state.entries)) if (this.ranges.some((r) => inRange(r, k))) map.set(k, entryOf(k, e));
    return map;
  }

  private reload(sink: StateSink): void {
    let next: Map<string, KvEntry>;
    try {
      next = this.read();
    } catch (err) {
      this.state.lastError = (err as Error).message;
      this.log.warn({ err: (err as Error).message, path: this.path }, 'state file unreadable; serving last known state');
      return;
    }
    const changes: KvChange[] = [];
    for (const [k, e] of next) {
      if (this.current.get(k)?.modRevision !== e.modRevision) changes.push({ key: k, value: e.value, modRevision: e.modRevision });
    }
    for (const k of this.current.keys()) if (!next.has(k)) changes.push({ key: k, value: undefined, modRevision: this.state.revision });
    this.current = next;
    this.state.reloads++;
    if (changes.length) sink.apply(changes, this.state.revision);
  }
}
