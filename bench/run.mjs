// The benchmark suite: `npm run bench` (full, writes BENCHMARKS.md) and `npm run bench:quick`
// (CI: under a minute, asserts ratios with generous margins, exit 1 on a regression).
// Everything runs on loopback, bounded in time; every figure that matters is a ratio between
// runs of the same session, medians over rounds interleaved across targets (the machine is
// shared and noisy: absolute figures are printed for orientation only).
import { fork, spawn } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import { cpus, totalmem, loadavg, release, userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startEtcd } from './lib/etcd.mjs';
import { seed, wipe } from './lib/seed.mjs';
import { startServe } from './lib/serve.mjs';
import { propagation } from './lib/propagation.mjs';
import { dnsperf, wrk } from './lib/load.mjs';
import { DnsClient } from './lib/dns-client.mjs';
import { freePort, median, percentile, rssMiB, run, sleep, stopChild } from './lib/proc.mjs';

const QUICK = process.argv.includes('--quick');
const P = QUICK
  ? { seconds: 2, rounds: 1, sizes: [10, 10_000], changes: 100, propBudgetMs: 8000, workers: [], compare: false }
  : { seconds: 4, rounds: 3, sizes: [10, 1_000, 10_000, 100_000], changes: 1000, propBudgetMs: 90_000, workers: [1, 2, 3], compare: true };
const USERS = 1000;
const NETWORKS = 10;
const PREFIX = '/bench';
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const log = (...a) => console.error('[bench]', ...a);
const started = Date.now();
const load0 = loadavg();

/** A few names of the data set, spread over it, as dnsperf query lines. */
function vmQueries(n, k = 1000) {
  const out = [];
  for (let j = 0; j < Math.min(n, k); j++) {
    const i = Math.floor((j * n) / Math.min(n, k));
    out.push(`vm${i}.net${i % NETWORKS}.bench.internal AAAA`);
  }
  return out;
}
const META_Q = ['metadata.net0.bench.internal AAAA'];

/** Runs each named measurement `rounds` times, interleaved, and keeps every result. */
async function interleaved(targets, rounds) {
  const res = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
  for (let r = 0; r < rounds; r++) for (const [k, f] of Object.entries(targets)) res[k].push(await f());
  return res;
}
const med = (rs, f) => median(rs.map(f));

async function dnsLatency(port, name, n = 1000) {
  const c = new DnsClient('127.0.0.1', port);
  const ms = [];
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      const r = await c.query(name, 28, 1000);
      if (r) ms.push(performance.now() - t);
    }
  } finally { c.close(); }
  return { p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

function startBareDns(port) {
  return new Promise((resolve, reject) => {
    const child = fork(here('./dns/bare-responder.mjs'), [String(port)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('message', () => resolve(child));
    child.once('exit', (c) => reject(new Error(`bare responder exited ${c}`)));
  });
}
function startBareHttp(port) {
  return new Promise((resolve, reject) => {
    const child = fork(here('./bare-http.mjs'), [String(port)], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    child.once('message', () => resolve(child));
    child.once('exit', (c) => reject(new Error(`bare http exited ${c}`)));
  });
}
async function startDnsmasq(port, args) {
  const child = spawn('/usr/sbin/dnsmasq', ['-k', '--no-resolv', '--no-hosts', `--port=${port}`, '--listen-address=127.0.0.1',
    '--bind-interfaces', `--user=${userInfo().username}`, '--pid-file=', '--cache-size=10000', ...args], { stdio: 'ignore' });
  const c = new DnsClient('127.0.0.1', port);
  for (let i = 0; i < 100 && child.exitCode === null; i++) {
    if (await c.query('probe.invalid', 28, 50)) break;
    await sleep(20);
  }
  c.close();
  if (child.exitCode !== null) throw new Error(`dnsmasq exited ${child.exitCode}`);
  return child;
}

async function version(cmd, args, re) {
  try { return re.exec(await run(cmd, args, { timeoutMs: 5000 }))?.[1] ?? '?'; } catch (e) { return re.exec(String(e.message))?.[1] ?? '?'; }
}

const results = { compare: undefined, scale: [], workers: [] };
const etcd = await startEtcd();
const children = [];
process.on('SIGINT', () => process.exit(130));
try {
  // ---- scale: 10 .. 100,000 VMs (the smallest also hosts the comparisons) ----
  let seeded = 0;
  for (const size of P.sizes) {
    log(`scale: seeding ${size} VMs, ${USERS} users, ${NETWORKS} networks`);
    if (seeded) await wipe(etcd.endpoint, PREFIX);
    const t = performance.now();
    await seed(etcd.endpoint, PREFIX, { vms: size, users: USERS, networks: NETWORKS });
    seeded = size;
    const seedMs = performance.now() - t;
    const lastVm = `vm${size - 1}.net${(size - 1) % NETWORKS}.bench.internal`;
    const upPort = await freePort();
    const upstream = await startDnsmasq(upPort, ['--host-record=ext.example.org,2001:db8:ff::7', '--local-ttl=3600']);
    children.push(upstream);
    const colds = [];
    let serve;
    for (let r = 0; r < P.rounds; r++) {
      if (serve) await serve.stop();
      serve = await startServe({ endpoint: etcd.endpoint, prefix: PREFIX, readyName: lastVm, upstream: `127.0.0.1:${upPort}` });
      colds.push(serve.readyMs);
    }
    await sleep(1000);
    const rss = rssMiB(serve.pid);
    log(`scale ${size}: ready in ${median(colds).toFixed(0)} ms, RSS ${rss.toFixed(0)} MiB`);
    const rates = await interleaved({
      dns: () => dnsperf(serve.dns, vmQueries(size), P.seconds),
      http: () => wrk(`http://127.0.0.1:${serve.http}/openstack/latest/meta_data.json`, P.seconds),
    }, P.rounds);
    log(`scale ${size}: propagation over ${P.changes} changes`);
    const prop = await propagation({ endpoint: etcd.endpoint, prefix: PREFIX, users: USERS, dnsPort: serve.dns, httpPort: serve.http, count: P.changes, run: results.scale.length, budgetMs: P.propBudgetMs });
    results.scale.push({
      size, seedMs, coldMs: median(colds), rss,
      dnsQps: med(rates.dns, (x) => x.qps), httpRps: med(rates.http, (x) => x.rps), prop,
    });

    if (size === P.sizes[0]) {
      // ---- comparisons against Node's ceiling and dnsmasq, on the small data set ----
      log('compare: DNS and HTTP against bare Node and dnsmasq');
      const bareDnsPort = await freePort();
      const bareDns = await startBareDns(bareDnsPort);
      const bareHttpPort = await freePort();
      const bareHttp = await startBareHttp(bareHttpPort);
      children.push(bareDns, bareHttp);
      const dmPort = await freePort();
      const hosts = vmQueries(size).map((q, i) => `--host-record=${q.split(' ')[0]},2001:db8:${(i % NETWORKS) + 1}::${(i + 16).toString(16)}`);
      const dnsmasq = await startDnsmasq(dmPort, ['--host-record=metadata.net0.bench.internal,fd00:1::1', ...hosts]);
      const fwPort = await freePort();
      const dnsmasqFwd = await startDnsmasq(fwPort, [`--server=127.0.0.1#${upPort}`]);
      children.push(dnsmasq, dnsmasqFwd);
      const D = P.compare || QUICK;
      const dnsTargets = {
        bare: () => dnsperf(bareDnsPort, ['metadata.lab.example AAAA'], P.seconds),
        oursMeta: () => dnsperf(serve.dns, META_Q, P.seconds),
        oursVm: () => dnsperf(serve.dns, vmQueries(size), P.seconds),
        ...(P.compare ? {
          dnsmasqMeta: () => dnsperf(dmPort, META_Q, P.seconds),
          dnsmasqVm: () => dnsperf(dmPort, vmQueries(size), P.seconds),
          oursFwd: () => dnsperf(serve.dns, ['ext.example.org AAAA'], P.seconds),
          dnsmasqFwd: () => dnsperf(fwPort, ['ext.example.org AAAA'], P.seconds),
        } : {}),
      };
      const gce = ['Metadata-Flavor: Google'];
      const u = (port, path) => `http://127.0.0.1:${port}${path}`;
      const httpTargets = {
        bare: () => wrk(u(bareHttpPort, '/'), P.seconds),
        metaData: () => wrk(u(serve.http, '/openstack/latest/meta_data.json'), P.seconds),
        ...(P.compare ? {
          keys: () => wrk(u(serve.http, '/keys'), P.seconds),
          ec2Leaf: () => wrk(u(serve.http, '/latest/meta-data/instance-id'), P.seconds),
          gceRecursive: () => wrk(u(serve.http, '/computeMetadata/v1/instance/?recursive=true'), P.seconds, { headers: gce }),
        } : {}),
      };
      if (D) {
        const dns = await interleaved(dnsTargets, P.rounds);
        const http = await interleaved(httpTargets, P.rounds);
        const latency = P.compare ? {
          bare: await dnsLatency(bareDnsPort, 'metadata.lab.example'),
          oursMeta: await dnsLatency(serve.dns, 'metadata.net0.bench.internal'),
          oursVm: await dnsLatency(serve.dns, 'vm1.net1.bench.internal'),
          dnsmasqMeta: await dnsLatency(dmPort, 'metadata.net0.bench.internal'),
          dnsmasqVm: await dnsLatency(dmPort, 'vm1.net1.bench.internal'),
          oursFwd: await dnsLatency(serve.dns, 'ext.example.org'),
          dnsmasqFwd: await dnsLatency(fwPort, 'ext.example.org'),
        } : {};
        results.compare = { dns, http, latency };
      }
      for (const c of [bareDns, bareHttp, dnsmasq, dnsmasqFwd]) await stopChild(c);
    }
    await serve.stop();
    await stopChild(upstream);
  }

  // ---- workers, on the largest data set ----
  for (const n of P.workers) {
    log(`workers: ${n}`);
    const size = seeded;
    const serve = await startServe({ endpoint: etcd.endpoint, prefix: PREFIX, readyName: `vm${size - 1}.net${(size - 1) % NETWORKS}.bench.internal`, workers: n });
    await sleep(1000);
    const rates = await interleaved({
      dns: () => dnsperf(serve.dns, vmQueries(size), P.seconds, { clients: 4 }),
      http: () => wrk(`http://127.0.0.1:${serve.http}/openstack/latest/meta_data.json`, P.seconds, { connections: 64 }),
    }, P.rounds);
    results.workers.push({ n, size, readyMs: serve.readyMs, rss: rssMiB(serve.pid, true), dnsQps: med(rates.dns, (x) => x.qps), httpRps: med(rates.http, (x) => x.rps) });
    await serve.stop();
  }
} finally {
  for (const c of children) await stopChild(c);
  await etcd.stop();
}

// ---- report ----
const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '-');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
const lines = [];
const table = (head, rows) => {
  lines.push(`| ${head.join(' | ')} |`, `| ${head.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.join(' | ')} |`), '');
};
const base = results.scale[0];
if (results.compare) {
  const { dns, http, latency } = results.compare;
  const bare = med(dns.bare, (x) => x.qps);
  const label = {
    bare: 'bare Node dgram responder (Node\'s ceiling)', oursMeta: 'ours: `metadata.<domain>` AAAA', oursVm: 'ours: VM name AAAA',
    dnsmasqMeta: 'dnsmasq: `metadata` host-record', dnsmasqVm: 'dnsmasq: VM names as host-records',
    oursFwd: 'ours: forwarded name, cache hit', dnsmasqFwd: 'dnsmasq: forwarded name, cache hit',
  };
  lines.push(`### DNS (dnsperf -c 4 -q 200, ${P.seconds} s per run, median of ${P.rounds})`, '');
  table(['server / query', 'qps', 'ratio to bare Node', 'ratio to dnsmasq (same query)', 'avg latency under load (ms)', 'p50 / p99 unloaded (ms)'],
    Object.keys(dns).map((k) => {
      const q = med(dns[k], (x) => x.qps);
      const peer = { oursMeta: 'dnsmasqMeta', oursVm: 'dnsmasqVm', oursFwd: 'dnsmasqFwd' }[k];
      const vsPeer = peer && dns[peer] ? f2(q / med(dns[peer], (x) => x.qps)) : '';
      const l = latency[k];
      return [label[k], f0(q), f2(q / bare), vsPeer, f2(med(dns[k], (x) => x.avgMs)), l ? `${f2(l.p50)} / ${f2(l.p99)}` : ''];
    }));
  const bareH = med(http.bare, (x) => x.rps);
  const hl = { bare: 'bare `node:http`, static body of the same size', metaData: 'OpenStack `meta_data.json`', keys: 'native `/keys`', ec2Leaf: 'EC2 `/latest/meta-data/instance-id`', gceRecursive: 'GCE `instance/?recursive=true`' };
  lines.push(`### HTTP (wrk -t1 -c32, ${P.seconds} s per run, median of ${P.rounds})`, '');
  table(['endpoint', 'requests/s', 'ratio to bare node:http', 'p50 (ms)', 'p99 (ms)'],
    Object.keys(http).map((k) => [hl[k], f0(med(http[k], (x) => x.rps)), f2(med(http[k], (x) => x.rps) / bareH), f2(med(http[k], (x) => x.p50)), f2(med(http[k], (x) => x.p99))]));
}
lines.push(`### Scale (${USERS} users, ${NETWORKS} networks; one process; rates are VM-name AAAA over up to 1,000 names, and meta_data.json)`, '');
table(['VMs', 'cold start to first answer (ms)', 'RSS after ready (MiB)', 'DNS qps', 'DNS vs 10 VMs', 'HTTP rps', 'HTTP vs 10 VMs', `propagation DNS p50 / p99 (ms, ${P.changes} changes)`, 'propagation HTTP p50 / p99 (ms)'],
  results.scale.map((s) => {
    const note = s.prop.count < s.prop.wanted ? ` (only ${s.prop.count} changes within the time budget${s.prop.misses ? `, ${s.prop.misses} not visible within ${s.prop.timeoutMs} ms` : ''})` : '';
    return [s.size.toLocaleString('en'), f0(s.coldMs), f0(s.rss), f0(s.dnsQps), f2(s.dnsQps / base.dnsQps), f0(s.httpRps), f2(s.httpRps / base.httpRps),
      `${f1(s.prop.dns.p50)} / ${f1(s.prop.dns.p99)}${note}`, `${f1(s.prop.http.p50)} / ${f1(s.prop.http.p99)}`];
  }));
if (results.workers.length) {
  const w1 = results.workers[0];
  lines.push(`### Workers (\`serve --workers N\`, ${w1.size.toLocaleString('en')} VMs; load generators on the same ${cpus().length} cores)`, '');
  table(['workers', 'ready (ms)', 'RSS, all processes (MiB)', 'DNS qps', 'DNS vs 1', 'HTTP rps (wrk -c64)', 'HTTP vs 1'],
    results.workers.map((w) => [w.n, f0(w.readyMs), f0(w.rss), f0(w.dnsQps), f2(w.dnsQps / w1.dnsQps), f0(w.httpRps), f2(w.httpRps / w1.httpRps)]));
}
const report = lines.join('\n');
console.log(report);

if (QUICK) {
  // Generous margins: these catch a broken fast path or an O(n) lookup, not noise.
  const failures = [];
  const check = (ok, what) => { console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`); if (!ok) failures.push(what); };
  const { dns, http } = results.compare;
  const bare = med(dns.bare, (x) => x.qps);
  check(med(dns.oursVm, (x) => x.qps) >= 0.25 * bare, 'DNS VM name >= 0.25 x bare Node responder');
  check(med(dns.oursMeta, (x) => x.qps) >= 0.25 * bare, 'DNS metadata >= 0.25 x bare Node responder');
  check(med(http.metaData, (x) => x.rps) >= 0.2 * med(http.bare, (x) => x.rps), 'HTTP meta_data.json >= 0.2 x bare node:http');
  const big = results.scale.at(-1);
  // The two sizes run one after the other (not interleaved), so a passing burst of other load
  // skews them: 0.3 still catches an O(n) path (a zone rebuild per change measured 0.13).
  check(big.dnsQps >= 0.3 * base.dnsQps, `DNS rate with ${big.size} VMs >= 0.3 x with ${base.size}`);
  check(big.httpRps >= 0.3 * base.httpRps, `HTTP rate with ${big.size} VMs >= 0.3 x with ${base.size}`);
  check(big.prop.dns.p50 <= 4 * base.prop.dns.p50 + 20, `propagation p50 with ${big.size} VMs <= 4 x with ${base.size} (+20 ms)`);
  check(big.rss <= 3 * base.rss, `RSS with ${big.size} VMs <= 3 x with ${base.size}`);
  console.log(`quick bench: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  process.exitCode = failures.length ? 1 : 0;
} else {
  const cpu = cpus();
  const machine = [
    `- CPU: ${cpu.length} x ${cpu[0]?.model ?? '?'}; memory ${(totalmem() / 2 ** 30).toFixed(1)} GiB; Linux ${release()}`,
    `- Node ${process.version}; etcd ${await version('etcd', ['--version'], /etcd Version:\s*(\S+)/)} (data on /dev/shm); dnsperf ${await version('dnsperf', ['-h'], /Version:?\s*(\S+)/)}; ${await version('wrk', ['-v'], /(wrk \S+)/)}; dnsmasq ${await version('/usr/sbin/dnsmasq', ['--version'], /version\s+(\S+)/)}`,
    `- load average at start ${load0.map(f2).join(' ')}, at end ${loadavg().map(f2).join(' ')} (the machine is shared: other work ran during this bench)`,
    `- servers and load generators share the same cores; total bench time ${((Date.now() - started) / 1000).toFixed(0)} s`,
  ].join('\n');
  const file = here('../BENCHMARKS.md');
  const old = (() => { try { return readFileSync(file, 'utf8'); } catch { return ''; } })();
  const marker = '<!-- bench:results -->';
  const head = old.includes(marker) ? old.slice(0, old.indexOf(marker)) : '# Benchmarks\n\nGenerated by `npm run bench` (bench/run.mjs).\n\n';
  writeFileSync(file, `${head}${marker}\n## Results of the last run (${new Date().toISOString().slice(0, 16)}Z)\n\n${machine}\n\n${report}`);
  log(`wrote ${file}`);
}
