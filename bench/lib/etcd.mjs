// A throwaway etcd on loopback for one bench run (the same flags as test/support/etcd-global.ts),
// its data directory on tmpfs when there is one, so fsync latency of the shared disk does not
// dominate propagation numbers.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './proc.mjs';

/** `quotaBytes`: etcd's backend quota (a million VMs need more than the default). */
export async function startEtcd({ quotaBytes = 4 * 1024 ** 3 } = {}) {
  execFileSync('etcd', ['--version'], { stdio: 'ignore' });
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, 'uncloud-bench-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const proc = spawn('etcd', [
    '--name', 'bench', '--data-dir', dir,
    '--listen-client-urls', `http://127.0.0.1:${client}`, '--advertise-client-urls', `http://127.0.0.1:${client}`,
    '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
    '--initial-cluster', `bench=http://127.0.0.1:${peer}`,
    '--quota-backend-bytes', String(quotaBytes),
    '--log-level', 'error', '--logger', 'zap',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (b) => (stderr += b));
  const endpoint = `127.0.0.1:${client}`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`etcd exited: ${stderr}`);
    try {
      if ((await fetch(`http://${endpoint}/health`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`etcd did not come up: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint, pid: proc.pid, dir,
    async stop() {
      if (proc.exitCode === null) {
        const gone = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
