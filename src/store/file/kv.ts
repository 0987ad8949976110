// Kv over one JSON state file, for single-host use and the demo. Every transaction takes a
// lock file, reads, compares, and replaces the file atomically (write, fsync, rename), so
// several CLI processes and a running daemon never see a half-written state.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Kv, KvEntry, KvTxn, KvTxnResult } from '../kv.js';

interface FileEntry { value: unknown; mod: number; create: number }
export interface FileState { revision: number; entries: Record<string, FileEntry> }

const LOCK_STALE_MS = 10_000;
const LOCK_WAIT_MS = 10_000;

export function readState(path: string): FileState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { revision: 0, entries: {} };
    throw err;
  }
  const parsed = JSON.parse(text) as FileState;
  if (typeof parsed.revision !== 'number' || typeof parsed.entries !== 'object' || parsed.entries === null) {
    throw new Error(`${path} is not an uncloud-metadata state file`);
  }
  return parsed;
}

export function entryOf(key: string, e: FileEntry): KvEntry {
  return { key, value: typeof e.value === 'string' ? e.value : JSON.stringify(e.value), modRevision: e.mod, createRevision: e.create };
}

function storedValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
}

export class FileKv implements Kv {
  readonly description: string;

  constructor(readonly path: string) {
    this.description = `file:${path}`;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const e = readState(this.path).entries[key];
    return e ? entryOf(key, e) : undefined;
  }

  async range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const state = readState(this.path);
    const entries = Object.keys(state.entries).filter((k) => k.startsWith(prefix)).sort()
      .map((k) => entryOf(k, state.entries[k]));
    return { entries, revision: state.revision };
  }

  async txn(t: KvTxn): Promise<KvTxnResult> {
    return this.locked(() => {
      const state = readState(this.path);
      const ok = t.compares.every((c) => (state.entries[c.key]?.mod ?? 0) === c.modRevision);
      if (!ok) return { succeeded: false, revision: state.revision };
      if (t.puts.length === 0 && t.deletes.length === 0) return { succeeded: true, revision: state.revision };
      const rev = state.revision + 1;
      for (const p of t.puts) {
        state.entries[p.key] = { value: storedValue(p.value), mod: rev, create: state.entries[p.key]?.create ?? rev };
      }
      for (const k of t.deletes) delete state.entries[k];
      state.revision = rev;
      writeAtomically(this.path, JSON.stringify(state, null, 1) + '\n');
      return { succeeded: true, revision: rev };
    });
  }

  async close(): Promise<void> {}

  private async locked<T>(fn: () => T): Promise<T> {
    mkdirSync(dirname(this.path), { recursive: true });
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        closeSync(openSync(lock, 'wx'));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        try {
          if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { force: true });
        } catch { /* the holder just released it */ }
        if (Date.now() > deadline) throw new Error(`${lock} is held by another process`);
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
      }
    }
    try {
      return fn();
    } finally {
      rmSync(lock, { force: true });
    }
  }
}

export function writeAtomically(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
