// Metadata HTTP throughput against a bare node:http server, same machine, same run.
//   npm run build && node bench/http/bench.mjs [seconds-per-pass=3] [rounds=5]
// wrk -t1 -c32 on loopback: first a bare server returning a static body the size of our
// meta_data.json, then our server for that VM's meta_data.json, /keys, an EC2 leaf and a GCE
// recursive read, then the bare server again; ratios are against the mean of the bare runs.
// With two or more cores, this process (both servers) is pinned to core 0 and wrk to core 1.
import { createServer } from 'node:http';
import { execFile, execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Registry } from '../../dist/registry/registry.js';
import { Keys } from '../../dist/store/keys.js';
import { silentLogger } from '../../dist/log.js';
import { startHttpServer } from '../../dist/http/server.js';

const twoCores = availableParallelism() >= 2;
if (twoCores) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
const seconds = Number(process.argv[2] ?? 3);
const ROUNDS = Number(process.argv[3] ?? 5);
const KEY1 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j alice@laptop';
const KEY2 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH alice@desk';

function registryWithOneVm() {
  const keys = new Keys();
  const rec = (key, value) => ({ key, value: JSON.stringify(value), modRevision: 1, createRevision: 1 });
  const registry = new Registry({ log: silentLogger() });
  registry.reset([
    rec(keys.network('bench'), { v: 1, name: 'bench', prefix6: 'fd00:be::/64', prefix4: '127.0.0.0/8', domain: 'bench.example', metadata6: 'fd00:be::1', metadata4: '127.0.0.53', upstreams: [] }),
    rec(keys.owner('bench', 'alice'), { v: 1, name: 'alice', keys: [{ name: 'laptop', key: KEY1 }, { name: 'desk', key: KEY2 }] }),
    rec(keys.vm('bench', 'web'), {
      v: 1, id: '6f1d3c7e-2b4a-4e8f-9a1b-3c5d7e9f1a2b', name: 'web', network: 'bench', owner: 'alice', mac: '52:54:00:12:34:56',
      addresses: ['127.0.0.1'], resources: { memoryMiB: 1024, cpus: 2 }, meta: { role: 'frontend', team: 'web' },
      userData: '#cloud-config\npackages: [nginx]\n', sshKeys: [], requireToken: false, createdAt: '2026-01-01T00:00:00Z',
    }),
  ], 1);
  return registry;
}

/** Requests per second, and this process's CPU time per request (both servers live here). */
function wrk(url, headers = {}) {
  const args = ['-t1', '-c32', `-d${seconds}s`, ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
  const [cmd, ...pre] = twoCores ? ['taskset', '-c', '1', 'wrk'] : ['wrk'];
  const cpu0 = process.cpuUsage();
  return new Promise((resolve, reject) => execFile(cmd, [...pre, ...args], (err, stdout) => {
    if (err) return reject(err);
    const cpu = process.cpuUsage(cpu0);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
    const n = Number(/(\d+) requests in/.exec(stdout)?.[1]);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0);
    if (!rps || !n || non2xx) return reject(new Error(`wrk ${url}: ${stdout}`));
    resolve({ rps, cpuUs: (cpu.user + cpu.system) / n });
  }));
}

const registry = registryWithOneVm();
const meta = await startHttpServer({ registry, tokenSecret: Buffer.from('bench'), log: silentLogger(), listen: [{ host: '127.0.0.1', port: 0 }] });
const base = `http://127.0.0.1:${meta.addresses[0].port}`;
const sample = await (await fetch(`${base}/openstack/latest/meta_data.json`)).text();
const body = 'x'.repeat(Buffer.byteLength(sample));
const bare = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  res.end(body);
});
await new Promise((r) => bare.listen(0, '127.0.0.1', r));
const bareUrl = `http://127.0.0.1:${bare.address().port}/`;

// meta_data.json, /keys and GCE recursive (the targets >= 0.85) run `rounds` rounds, the EC2 leaf one.
// The machine is shared and load drifts between passes: each round runs bare, ours, ours, bare
// (ABBA, so a steady drift cancels) and the median of the per-round ratios counts. Besides the
// throughput ratio it prints the CPU-time ratio (bare's CPU per request over ours), which other
// people's load on the same cores disturbs much less.
const targets = [
  ['openstack meta_data.json', `${base}/openstack/latest/meta_data.json`, {}, ROUNDS],
  ['/keys', `${base}/keys`, {}, ROUNDS],
  ['ec2 meta-data/instance-id', `${base}/latest/meta-data/instance-id`, {}, 1],
  ['gce instance/?recursive=true', `${base}/computeMetadata/v1/instance/?recursive=true`, { 'Metadata-Flavor': 'Google' }, ROUNDS],
];
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`meta_data.json body ${Buffer.byteLength(sample)} bytes; wrk -t1 -c32 -d${seconds}s per pass, loopback; ${twoCores ? 'servers pinned to core 0, wrk to core 1' : 'one core: not pinned'}; load ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
await wrk(bareUrl); // warm-up passes (JIT, caches), discarded
for (const [, url, headers] of targets) await wrk(url, headers);
let headline;
for (const [name, url, headers, rounds] of targets) {
  const ratios = [];
  const cpuRatios = [];
  const seen = [];
  for (let i = 0; i < rounds; i++) {
    const b1 = await wrk(bareUrl);
    const r1 = await wrk(url, headers);
    const r2 = await wrk(url, headers);
    const b2 = await wrk(bareUrl);
    ratios.push((r1.rps + r2.rps) / (b1.rps + b2.rps));
    cpuRatios.push((b1.cpuUs + b2.cpuUs) / (r1.cpuUs + r2.cpuUs));
    seen.push(`${((r1.rps + r2.rps) / 2).toFixed(0)}/${((b1.rps + b2.rps) / 2).toFixed(0)}`);
  }
  const ratio = median(ratios);
  headline ??= ratio;
  const bytes = Buffer.byteLength(await (await fetch(url, { headers })).text());
  const mark = rounds > 1 ? (ratio >= 0.85 ? ' [>= 0.85]' : ' [BELOW 0.85]') : '';
  console.log(`${`${name} (${bytes} B)`.padEnd(36)} rps ratio ${ratio.toFixed(3)}${mark}  cpu ratio ${median(cpuRatios).toFixed(3)}  (ours/bare rps: ${seen.join(', ')})`);
}
console.log(`meta_data.json / bare node:http = ${headline.toFixed(3)} (target >= 0.85): ${headline >= 0.85 ? 'OK' : 'BELOW TARGET'}`);
await meta.close();
bare.close();
