// `npm run bench:million`: a store of a million VMs (issue 14). One etcd holds two prefixes:
//   /own  — only net0: its 1,000 VMs and their 100 owners (what a store of one network holds);
//   /big  — 1,000,000 VMs over 1,000 networks (1,000 each), 100,000 users, 1,000 hosts.
// The same appliance (`serve --network net0`) runs on each, one after the other, interleaved over
// rounds: cold start to first answer, RSS, DNS and HTTP rates, propagation p50/p99. The figures
// that matter are big/own ratios from this one run. Then: writes to other networks reach the
// net0 appliance as no watch event at all; the agent of hv0 (one host among 1,000) loads its range;
// and one appliance serving 100,000 VMs of one network (prefix /one).
// CPU-, memory- and disk-heavy (etcd's data on /dev/shm grows to a few GiB): run it alone.
// Knobs: MILLION_VMS, MILLION_NETWORKS, MILLION_USERS, MILLION_HOSTS, MILLION_ROUNDS, MILLION_ONE (0 skips /one),
// MILLION_SECONDS (per rate run), MILLION_CHANGES (propagation).
import { execFile, fork } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import { Etcd3 } from 'etcd3';
import { startEtcd } from './lib/etcd.mjs';
import { seed, vm, domainOf } from './lib/seed.mjs';
import { startServe } from './lib/serve.mjs';
import { propagation } from './lib/propagation.mjs';
import { dnsperf, wrk } from './lib/load.mjs';
import { median, rssMiB, sleep } from './lib/proc.mjs';
import { Keys } from '../dist/store/keys.js';

const exec = promisify(execFile);
const env = (k, d) => Number(process.env[k] ?? d);
const VMS = env('MILLION_VMS', 1_000_000);
const NETWORKS = env('MILLION_NETWORKS', 1_000);
const USERS = env('MILLION_USERS', 100_000);
const HOSTS = env('MILLION_HOSTS', 1_000);
const ROUNDS = env('MILLION_ROUNDS', 3);
const ONE = env('MILLION_ONE', 100_000);
const PER_NET = VMS / NETWORKS;
const SECONDS = env('MILLION_SECONDS', 4);
const CHANGES = env('MILLION_CHANGES', 300);
const log = (...a) => console.error('[million]', ...a);
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

/** net0's VM names as dnsperf lines (VM i is in network i % NETWORKS). */
const net0Queries = (stride, count) => Array.from({ length: Math.min(count, 1000) }, (_, j) => `vm${j * stride}.${domainOf('net0')} AAAA`);

async function etcdStatus(endpoint) {
  const { stdout } = await exec('etcdctl', ['--endpoints', `http://${endpoint}`, 'endpoint', 'status', '-w', 'json'], { env: { ...process.env, ETCDCTL_API: '3' } });
  const s = JSON.parse(stdout)[0].Status;
  return { dbSizeMiB: s.dbSize / 2 ** 20, revision: s.header.revision };
}

async function countKeys(endpoint, prefix) {
  const c = new Etcd3({ hosts: `http://${endpoint}` });
  try { return Number(await c.getAll().prefix(`${prefix}/`).count()); } finally { c.close(); }
}

async function changesTotal(admin) {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  return Number(/^uncloud_metadata_registry_changes_total (\d+)/m.exec(text)?.[1]);
}

function agentLoad(endpoint, prefix, host) {
  return new Promise((resolve, reject) => {
    const child = fork(here('./lib/agent-load.mjs'), [endpoint, prefix, host], { execArgv: ['--expose-gc'], stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`agent-load exited ${code}: ${out}`))));
  });
}

/** One appliance on `prefix` serving net0: cold start, RSS, rates, propagation. */
async function measure(endpoint, prefix, { readyName, queries, users, run }) {
  const s = await startServe({ endpoint, prefix, networks: ['net0'], readyName, timeoutMs: 600_000 });
  try {
    await sleep(1500);
    const rss = rssMiB(s.pid);
    const dns = await dnsperf(s.dns, queries, SECONDS);
    const http = await wrk(`http://127.0.0.1:${s.http}/openstack/latest/meta_data.json`, SECONDS);
    const prop = await propagation({ endpoint, prefix, users, dnsPort: s.dns, httpPort: s.http, count: CHANGES, run, budgetMs: 120_000 });
    return { coldMs: s.readyMs, rss, dnsQps: dns.qps, httpRps: http.rps, propDnsP50: prop.dns.p50, propDnsP99: prop.dns.p99, propHttpP99: prop.http.p99, misses: prop.misses };
  } finally {
    await s.stop();
  }
}

const started = Date.now();
const load0 = loadavg()[0];
const etcd = await startEtcd({ quotaBytes: 16 * 1024 ** 3 });
const out = { vms: VMS, networks: NETWORKS, users: USERS, hosts: HOSTS, rounds: ROUNDS, load0 };
try {
  log(`seeding /own: ${PER_NET} VMs of net0, ${PER_NET / 10} users`);
  const ownUsers = Math.max(1, PER_NET / 10);
  await seed(etcd.endpoint, '/own', { vms: PER_NET, users: ownUsers, networks: 1, hosts: 1 });
  log(`seeding /big: ${VMS} VMs, ${NETWORKS} networks, ${USERS} users, ${HOSTS} hosts`);
  const t = performance.now();
  const ops = await seed(etcd.endpoint, '/big', { vms: VMS, users: USERS, networks: NETWORKS, hosts: HOSTS });
  out.seed = { ms: performance.now() - t, puts: ops, keys: await countKeys(etcd.endpoint, '/big'), ...(await etcdStatus(etcd.endpoint)) };
  log('seeded', out.seed);

  const own = [];
  const big = [];
  for (let r = 0; r < ROUNDS; r++) {
    own.push(await measure(etcd.endpoint, '/own', { readyName: `vm${PER_NET - 1}.${domainOf('net0')}`, queries: net0Queries(1, PER_NET), users: ownUsers, run: r }));
    log('own', own.at(-1));
    big.push(await measure(etcd.endpoint, '/big', { readyName: `vm${VMS - NETWORKS}.${domainOf('net0')}`, queries: net0Queries(NETWORKS, PER_NET), users: USERS, run: 40 + r }));
    log('big', big.at(-1));
  }
  const med = (rs, k) => median(rs.map((x) => x[k]));
  out.appliance = Object.fromEntries(['coldMs', 'rss', 'dnsQps', 'httpRps', 'propDnsP50', 'propDnsP99', 'propHttpP99'].map((k) => [k, { own: med(own, k), big: med(big, k), ratio: med(big, k) / med(own, k) }]));
  out.misses = { own: own.reduce((a, x) => a + x.misses, 0), big: big.reduce((a, x) => a + x.misses, 0) };

  // Watch fan-out: 1,000 writes to other networks, then one to net0.
  log('fan-out: writes to other networks');
  {
    const s = await startServe({ endpoint: etcd.endpoint, prefix: '/big', networks: ['net0'], readyName: `vm0.${domainOf('net0')}`, timeoutMs: 600_000 });
    try {
      await sleep(1000);
      const before = await changesTotal(s.admin);
      const c = new Etcd3({ hosts: `http://${etcd.endpoint}` });
      const keys = new Keys('/big');
      for (let i = 0; i < 1000; i++) {
        const v = { ...vm(1 + (i % (NETWORKS - 1)), { networks: NETWORKS, users: USERS, hosts: HOSTS }), meta: { touched: String(i) } };
        await c.put(keys.vm(v.network, v.name)).value(JSON.stringify(v));
      }
      const v0 = { ...vm(0, { networks: NETWORKS, users: USERS, hosts: HOSTS }), meta: { touched: 'net0' } };
      await c.put(keys.vm('net0', 'vm0')).value(JSON.stringify(v0));
      c.close();
      let after = before;
      for (let i = 0; i < 200 && after === before; i++) { await sleep(25); after = await changesTotal(s.admin); }
      out.fanout = { otherWrites: 1000, eventsBefore: before, eventsAfter: after, eventsFromOthers: after - before - 1 };
    } finally {
      await s.stop();
    }
  }

  // The agent of hv0 (1,000 VMs of 10 networks in /big, of net0 in /own): a fresh process per
  // load, interleaved over 7 rounds; the median of each (one load is ~0.1 s, so one alone is noise).
  log('agent of hv0');
  const loads = { own: [], big: [] };
  for (let r = 0; r < 7; r++) for (const p of ['own', 'big']) loads[p].push(await agentLoad(etcd.endpoint, `/${p}`, 'hv0'));
  const agentOf = (rs) => ({ ...rs[0], ms: median(rs.map((x) => x.ms)), msAll: rs.map((x) => Math.round(x.ms)), rssMiB: median(rs.map((x) => x.rssMiB)) });
  out.agent = { own: agentOf(loads.own), big: agentOf(loads.big) };
  out.agent.ratio = out.agent.big.ms / out.agent.own.ms;

  if (ONE) {
    log(`seeding /one: ${ONE} VMs of one network`);
    await seed(etcd.endpoint, '/one', { vms: ONE, users: 1000, networks: 1 });
    // RSS 1.5 s after the first answer, and settled 10 s after it (serve hands memory back in the
    // seconds after a load: daemon/compact.ts).
    const colds = [];
    const rss = [];
    const settled = [];
    for (let r = 0; r < ROUNDS; r++) {
      const s = await startServe({ endpoint: etcd.endpoint, prefix: '/one', networks: ['net0'], readyName: `vm${ONE - 1}.${domainOf('net0')}`, timeoutMs: 600_000 });
      colds.push(s.readyMs);
      await sleep(1500);
      rss.push(rssMiB(s.pid));
      await sleep(8500);
      settled.push(rssMiB(s.pid));
      await s.stop();
    }
    out.one = { vms: ONE, coldMs: median(colds), rss: median(rss), rssSettled: median(settled) };
  }
  out.final = await etcdStatus(etcd.endpoint);
} finally {
  out.minutes = (Date.now() - started) / 60000;
  out.load1 = loadavg()[0];
  console.log(JSON.stringify(out, null, 1));
  await etcd.stop();
}
