// `node bench/one-against.mjs DIR...`: issue 14's "one appliance serving 100,000 VMs of one
// network" on several checkouts in one run. Each DIR is a built checkout (`npm ci && npm run
// build`), old ones included: its own bench/lib/seed.mjs seeds its own prefix in one etcd (so a
// checkout from before layout 2 gets a layout-1 store), and its own dist/cli/main.js runs
// `serve --network net0` on it, in rounds interleaved across checkouts (order reversed every
// other round). Per round: cold start to the first answer for the last VM's name, CPU used until
// then (user + system: less disturbed by other work on a shared machine than wall time), RSS
// 1.5 s after it (as bench/million.mjs's /one), RSS 10 s after it, then RSS and heap after two
// full collections (lib/gc-hook.cjs, preloaded into every checkout alike). Prints one JSON line per
// checkout with the medians. Knobs: ONE (VMs, default 100,000), ROUNDS (default 3).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from './lib/etcd.mjs';
import { firstAnswer } from './lib/serve.mjs';
import { freePort, median, rssMiB, sleep, stopChild } from './lib/proc.mjs';

const dirs = process.argv.slice(2).map((d) => resolve(d));
if (!dirs.length) throw new Error('usage: node bench/one-against.mjs DIR... (built checkouts)');
const ONE = Number(process.env.ONE ?? 100_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const hook = fileURLToPath(new URL('./lib/gc-hook.cjs', import.meta.url));
const memDir = mkdtempSync(join(tmpdir(), 'uncloud-one-against-'));
const log = (...a) => console.error('[one-against]', ...a);
const round1 = (x) => Math.round(x * 10) / 10;

/** CPU time (user + system) of a process so far, in ms. */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / 100);
}

async function serve(dir, endpoint, prefix, readyName) {
  const [dns, http, admin] = [await freePort(), await freePort(), await freePort()];
  const t0 = performance.now();
  const child = spawn(process.execPath, [join(dir, 'dist/cli/main.js'), 'serve', '--store', `etcd://${endpoint}`, '--prefix', prefix,
    '--dns', `127.0.0.1:${dns}`, '--http', `127.0.0.1:${http}`, '--admin', `127.0.0.1:${admin}`, '--log-level', 'error', '--network', 'net0'],
  { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: `--require ${hook}`, UNCLOUD_BENCH_MEM_DIR: memDir } });
  await firstAnswer(child, dns, readyName, { t0, timeoutMs: 600_000, what: `serve (${dir})` });
  return { child, readyMs: performance.now() - t0, cpuMs: cpuMs(child.pid) };
}

/** Asks the hook for a full collection and reads what it wrote. */
async function afterGc(pid) {
  const file = join(memDir, `mem-${pid}.json`);
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 400; i++) {
    await sleep(25);
    try { return JSON.parse(readFileSync(file, 'utf8')); } catch { /* not written yet */ }
  }
  throw new Error(`no memory report from ${pid}`);
}

const etcd = await startEtcd({ quotaBytes: 8 * 1024 ** 3 });
const targets = dirs.map((dir, i) => ({ dir, prefix: `/one${i}`, rows: [] }));
try {
  for (const t of targets) {
    const { seed, domainOf } = await import(join(t.dir, 'bench/lib/seed.mjs'));
    const s0 = performance.now();
    const puts = await seed(etcd.endpoint, t.prefix, { vms: ONE, users: 1000, networks: 1 });
    t.readyName = `vm${ONE - 1}.${domainOf('net0')}`;
    log(`seeded ${t.prefix} for ${t.dir}: ${puts} puts in ${Math.round(performance.now() - s0)} ms`);
  }
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of r % 2 ? [...targets].reverse() : targets) {
      const s = await serve(t.dir, etcd.endpoint, t.prefix, t.readyName);
      await sleep(1500);
      const rss = rssMiB(s.child.pid);
      await sleep(8500);
      const rss10 = rssMiB(s.child.pid);
      const mem = await afterGc(s.child.pid);
      const rssGc = rssMiB(s.child.pid);
      await stopChild(s.child, 5000);
      const row = { round: r, coldMs: Math.round(s.readyMs), cpuMs: s.cpuMs, rss: round1(rss), rss10: round1(rss10), rssGc: round1(rssGc), heapUsed: round1(mem.heapUsed / 2 ** 20), load1: round1(loadavg()[0]) };
      t.rows.push(row);
      log(t.dir, JSON.stringify(row));
    }
  }
  for (const t of targets) {
    const med = (k) => median(t.rows.map((x) => x[k]));
    console.log(JSON.stringify({ dir: t.dir, vms: ONE, rounds: ROUNDS, coldMs: med('coldMs'), cpuMs: med('cpuMs'), rss: med('rss'), rss10: med('rss10'), rssGc: med('rssGc'), heapUsed: med('heapUsed'), rows: t.rows }));
  }
} finally {
  await etcd.stop();
  rmSync(memDir, { recursive: true, force: true });
}
