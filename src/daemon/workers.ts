// `serve --workers N`: N copies of the whole daemon under node:cluster, so DNS and HTTP use more
// than one core. Each worker loads and follows the store itself (no shared state to keep in step
// but etcd's); the primary only forks, restarts and stops them.
//
// Sockets: TCP listeners (HTTP, DNS over TCP, admin) are shared by cluster's round-robin accept;
// the UDP DNS socket is bound once by the primary and its handle shared (dgram `exclusive: false`),
// so every worker reads from the same socket and the kernel hands each datagram to one of them.
// Node 20 has no SO_REUSEPORT for dgram (Node 23.1 adds `reusePort`).
//
// IMDSv2 tokens must verify on whichever worker a request lands, so without a configured
// tokenSecretFile the primary writes one random secret (0600, removed on exit) for all of them.
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';

export const isWorker = cluster.isWorker;

export interface Supervisor {
  /** Resolves once every worker has started serving (or one gave up while starting). */
  ready: Promise<void>;
  close(): Promise<void>;
}

const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 10_000;

export function superviseWorkers(cfg: Config, log: Logger): Supervisor {
  const count = cfg.serve.workers;
  const env: Record<string, string> = {};
  let secretDir: string | undefined;
  if (!cfg.serve.tokenSecretFile) {
    secretDir = mkdtempSync(join(tmpdir(), 'uncloud-metadata-'));
    const file = join(secretDir, 'token-secret');
    writeFileSync(file, randomBytes(32), { mode: 0o600 });
    env.UNCLOUD_METADATA_TOKEN_SECRET_FILE = file;
  }
  let stopping = false;
  const workers = new Set<Worker>();
  const started = new WeakSet<Worker>();
  let readyCount = 0;
  let markReady!: () => void;
  const ready = new Promise<void>((r) => (markReady = r));

  const fork = (slot: number, attempt: number): void => {
    const w = cluster.fork({ ...env, UNCLOUD_METADATA_WORKER: String(slot) });
    workers.add(w);
    const since = Date.now();
    w.on('listening', () => {
      if (started.has(w)) return;
      started.add(w);
      if (++readyCount === count) markReady();
    });
    w.on('exit', (code, signal) => {
      workers.delete(w);
      if (stopping) return;
      // A worker that ran a while restarts at once; one that keeps dying backs off.
      const next = Date.now() - since > 30_000 ? 0 : attempt + 1;
      const delay = next === 0 ? 0 : Math.min(RESTART_MIN_MS * 2 ** next, RESTART_MAX_MS);
      log.error({ worker: slot, code, signal, restartInMs: delay }, 'worker exited; restarting');
      setTimeout(() => { if (!stopping) fork(slot, next); }, delay).unref();
    });
  };
  for (let i = 0; i < count; i++) fork(i, 0);
  log.info({ workers: count }, 'started workers');

  return {
    ready,
    async close() {
      stopping = true;
      const exits = [...workers].map((w) => new Promise<void>((resolve) => {
        if (w.isDead()) return resolve();
        w.once('exit', () => resolve());
        const kill = setTimeout(() => w.process.kill('SIGKILL'), 10_000);
        kill.unref();
        w.process.kill('SIGTERM');
      }));
      await Promise.all(exits);
      if (secretDir) rmSync(secretDir, { recursive: true, force: true });
    },
  };
}
