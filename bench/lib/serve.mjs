// Starts the appliance as an operator would (`node dist/cli/main.js serve`), on loopback ports,
// and reports when it first answers a DNS question for a given name: the "ready" of cold start.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { DnsClient } from './dns-client.mjs';
import { freePort, sleep, stopChild } from './proc.mjs';

const main = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

export async function startServe({ endpoint, prefix, workers = 1, readyName, upstream, networks = [], timeoutMs = 120_000 }) {
  const dns = await freePort();
  const http = await freePort();
  const admin = await freePort();
  const t0 = performance.now();
  const args = [main, 'serve', '--store', `etcd://${endpoint}`, '--prefix', prefix, '--dns', `127.0.0.1:${dns}`,
    '--http', `127.0.0.1:${http}`, '--admin', `127.0.0.1:${admin}`, '--log-level', 'error', '--workers', String(workers),
    ...(upstream ? ['--upstream', upstream] : []), ...networks.flatMap((n) => ['--network', n])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  await firstAnswer(child, dns, readyName, { t0, timeoutMs, what: 'serve' });
  const readyMs = performance.now() - t0;
  // With workers, the first answer may come from the first worker: wait for the others too.
  if (workers > 1) await waitForWorkers(admin, workers);
  return { child, pid: child.pid, dns, http, admin, readyMs, stop: () => stopChild(child, 5000) };
}

/** Polls /readyz until `n` distinct worker processes have said ready (cluster spreads connections). */
async function waitForWorkers(admin, n) {
  const deadline = Date.now() + 60_000;
  let ok = 0;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${admin}/readyz`, { headers: { connection: 'close' } });
      ok = res.ok ? ok + 1 : 0;
      if (ok >= 4 * n) return;
    } catch { ok = 0; }
    await sleep(20);
  }
}

/**
 * Waits until a started `serve` answers `readyName` (AAAA) on its DNS port: its cold start. A
 * child that exits, or stays silent past `timeoutMs`, is stopped and reported with its last stderr.
 */
export async function firstAnswer(child, dns, readyName, { t0 = performance.now(), timeoutMs = 120_000, what = 'serve' } = {}) {
  let stderr = '';
  child.stderr.on('data', (b) => (stderr = (stderr + b).slice(-4000)));
  const client = new DnsClient('127.0.0.1', dns);
  try {
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${what} exited ${child.exitCode}: ${stderr}`);
      if (performance.now() - t0 > timeoutMs) throw new Error(`${what} not ready within ${timeoutMs} ms: ${stderr}`);
      const r = await client.query(readyName, 28, 50);
      if (r && r.rcode === 0 && r.answers > 0) break;
      await sleep(10);
    }
  } catch (err) {
    await stopChild(child);
    throw err;
  } finally {
    client.close();
  }
}
