// Soak: mixed DNS (dnsperf) and HTTP (wrk) load on the built daemon while operators keep
// changing VMs, for SOAK_SECONDS (default 30 in the suite; SOAK_SECONDS=600 for the 10-minute
// run). No lost query, no error response, the daemon's memory flat after warm-up, and at the
// end the daemon answers exactly what etcd holds.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, ED25519 } from '../support/store.js';
import { eui64Address } from '../../src/model/eui64.js';
import { parsePrefix } from '../../src/model/ip.js';
import { aaaa, figure, sleep, startDaemon, type Daemon } from './support.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 30);
/** Memory growth allowed after warm-up (the first fifth of the run). */
const RSS_BOUND_KIB = Number(process.env.SOAK_RSS_BOUND_MIB ?? 64) * 1024;

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('error', reject);
    p.on('exit', () => resolve(out));
  });
}

describe(`soak: ${SECONDS} s of mixed DNS and HTTP load with changes flowing`, () => {
  const t = etcdTestStore();
  let d: Daemon;
  const dir = mkdtempSync(join(tmpdir(), 'uncloud-rel-soak-'));
  const names: string[] = [];

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'loop', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'loop.test', metadata6: '::2', metadata4: '127.0.0.2' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addVm({ name: 'self', network: 'loop', owner: 'alice', addresses: ['::1', '127.0.0.1'], userData: '#cloud-config\n' });
    for (let i = 0; i < 60; i++) {
      names.push(`soak${i}`);
      await t.writer.addVm({ name: `soak${i}`, network: 'loop', owner: 'alice' });
    }
    d = await startDaemon(t.url, t.prefix, ['--log-level', 'info']);
  }, 120_000);
  afterAll(async () => {
    await d?.run.stop('SIGKILL');
    await t.close();
  });

  it('no lost query, no error, memory bounded, and the exact etcd state at the end', async () => {
    const queries = [
      'metadata AAAA', 'metadata.loop.test AAAA', 'metadata A', 'self.loop.test AAAA', 'self.loop.test A',
      ...names.map((n) => `${n}.loop.test AAAA`), 'nobody.loop.test AAAA', '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa PTR',
    ];
    writeFileSync(join(dir, 'queries.txt'), `${queries.join('\n')}\n`);
    const paths = ['/openstack/latest/meta_data.json', '/openstack/latest/user_data', '/latest/meta-data/hostname', '/keys', '/instance',
      '/nocloud/meta-data', '/latest/meta-data/public-keys/0/openssh-key', '/gce'];
    writeFileSync(join(dir, 'paths.lua'), `local paths = {${paths.map((p) => `"${p}"`).join(',')}}
local i = 0
request = function()
  i = i + 1
  local p = paths[(i % #paths) + 1]
  if p == "/gce" then return wrk.format("GET", "/computeMetadata/v1/instance/?recursive=true", {["Metadata-Flavor"]="Google"}) end
  return wrk.format("GET", p)
end
`);

    let changes = 0;
    let changeErrors = 0;
    /** What each failed change said, with when (a failure must say what it was). */
    const changeFailures: string[] = [];
    let stop = false;
    const churn = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          const name = names[i % names.length];
          if (i % 10 === 9) {
            await t.writer.removeVm(name, 'loop');
            await t.writer.addVm({ name, network: 'loop', owner: 'alice' });
          } else if (i % 10 === 5) {
            await t.writer.setVm('self', 'loop', (cur) => ({ meta: { ...cur.meta, round: String(i) } }));
          } else {
            await t.writer.setVm(name, 'loop', { meta: { round: String(i) } });
          }
          changes++;
        } catch (err) {
          changeErrors++;
          changeFailures.push(`${new Date().toISOString()} change ${i}: ${(err as Error).message.split('\n')[0]}`);
        }
        await sleep(50);
      }
    })();

    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(d.rssKiB()), 1000);
    const t0 = Date.now();
    const [dnsOut, httpOut] = await Promise.all([
      run('dnsperf', ['-s', '::1', '-p', String(d.dnsPort), '-d', join(dir, 'queries.txt'), '-l', String(SECONDS), '-c', '2', '-Q', '4000', '-t', '5']),
      run('wrk', ['-t', '1', '-c', '16', '-d', `${SECONDS}s`, '--timeout', '5s', '-s', join(dir, 'paths.lua'), `http://127.0.0.1:${d.httpPort}`]),
    ]);
    const ms = Date.now() - t0;
    stop = true;
    await churn;
    clearInterval(sampler);

    const num = (re: RegExp, text: string) => Number(re.exec(text)?.[1] ?? NaN);
    const dnsSent = num(/Queries sent:\s+(\d+)/, dnsOut);
    const dnsLost = num(/Queries lost:\s+(\d+)/, dnsOut);
    const dnsQps = num(/Queries per second:\s+([\d.]+)/, dnsOut);
    const httpRequests = num(/(\d+) requests in/, httpOut);
    const httpNon2xx = num(/Non-2xx or 3xx responses: (\d+)/, httpOut) || 0;
    const socketErrors = /Socket errors: (.*)/.exec(httpOut)?.[1] ?? 'none';
    const rps = num(/Requests\/sec:\s+([\d.]+)/, httpOut);

    // The end state is exactly etcd's.
    await sleep(500);
    const vms = await t.writer.listVms('loop');
    const p6 = parsePrefix('::/64', 6)!;
    const wrong: string[] = [];
    for (const vm of vms) {
      const want = [eui64Address(p6, vm.mac), ...vm.addresses.filter((a) => a.includes(':'))].sort();
      const got = await aaaa(d.resolver(), `${vm.name}.loop.test`);
      if (JSON.stringify(got) !== JSON.stringify(want)) wrong.push(vm.name);
    }
    const warm = rss[Math.floor(rss.length / 5)] ?? rss[0];
    const growthKiB = Math.max(...rss.slice(Math.floor(rss.length / 5))) - warm;
    figure('soak', {
      seconds: SECONDS, wallMs: ms, dnsSent, dnsLost, dnsQps, httpRequests, httpNon2xx, socketErrors, rps, changes, changeErrors, changeFailures,
      rssWarmKiB: warm, rssMaxKiB: Math.max(...rss), rssEndKiB: rss.at(-1), growthAfterWarmupKiB: growthKiB, endStateMismatches: wrong.length,
    });
    expect(dnsSent).toBeGreaterThan(0);
    expect(dnsLost).toBe(0);
    expect(httpRequests).toBeGreaterThan(0);
    expect(httpNon2xx).toBe(0);
    expect(socketErrors).toBe('none');
    expect(changes).toBeGreaterThan(0);
    expect(changeFailures).toEqual([]);
    expect(changeErrors).toBe(0);
    expect(wrong).toEqual([]);
    expect(growthKiB).toBeLessThan(RSS_BOUND_KIB);
    expect(d.run.proc.exitCode).toBeNull();
  }, (SECONDS + 120) * 1000);
});
