// `serve` as an operator runs it: the built binary on real etcd, answered by real dig and curl;
// the embedded demo exactly as the README's quick start promises; graceful SIGTERM.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually, ED25519 } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { startBin, type Running } from '../../test/support/daemon.js';

const exec = promisify(execFile);
const dig = async (...args: string[]) => (await exec('dig', ['+short', '+tries=1', '+time=2', ...args])).stdout.trim();
const curl = async (url: string, ...args: string[]) => (await exec('curl', ['-sS', '--max-time', '5', ...args, url])).stdout;

describe('serve on etcd', () => {
  const t = etcdTestStore();
  let daemon: Running;
  let dnsPort = 0;
  let httpPort = 0;
  let adminPort = 0;

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'loop', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'loop.test', metadata6: '::2', metadata4: '127.0.0.2' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addVm({ name: 'self', network: 'loop', owner: 'alice', addresses: ['::1', '127.0.0.1'], userData: '#cloud-config\n' });
    [dnsPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
    daemon = await startBin(['serve', '--store', t.url, '--prefix', t.prefix,
      '--dns', `[::1]:${dnsPort}`, '--dns', `127.0.0.1:${dnsPort}`, '--http', `[::1]:${httpPort}`, '--http', `127.0.0.1:${httpPort}`,
      '--admin', `[::1]:${adminPort}`, '--log-level', 'info']);
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await t.close();
  });

  it('answers metadata and VM names over DNS, v6 and v4', async () => {
    expect(await dig(`@::1`, '-p', String(dnsPort), 'metadata.loop.test', 'AAAA')).toBe('::2');
    expect(await dig(`@127.0.0.1`, '-p', String(dnsPort), 'metadata', 'A')).toBe('127.0.0.2');
    expect((await dig(`@::1`, '-p', String(dnsPort), 'self.loop.test', 'AAAA')).split('\n')).toContain('::1');
  });

  it('serves the OpenStack document and keys to the VM at its address', async () => {
    const md = JSON.parse(await curl(`http://[::1]:${httpPort}/openstack/latest/meta_data.json`));
    expect(md).toMatchObject({ name: 'self', hostname: 'self.loop.test', public_keys: { laptop: ED25519 } });
    expect(await curl(`http://127.0.0.1:${httpPort}/keys`)).toBe(`${ED25519}\n`);
  });

  it('follows etcd: a new key and a new VM show within a second', async () => {
    await t.writer.addUserKey('alice', 'second', ED25519.replace('alice@laptop', 'alice@second'));
    await eventually(async () => (await curl(`http://[::1]:${httpPort}/keys`)).includes('alice@second'), 1000);
    await t.writer.addVm({ name: 'other', network: 'loop', mac: '02:00:00:00:00:77' });
    await eventually(async () => (await dig(`@::1`, '-p', String(dnsPort), 'other.loop.test', 'AAAA')) === '::ff:fe00:77', 1000);
  });

  it('reports health, readiness and metrics on the admin listener only', async () => {
    expect(await curl(`http://[::1]:${adminPort}/healthz`)).toBe('ok\n');
    expect(JSON.parse(await curl(`http://[::1]:${adminPort}/readyz`))).toMatchObject({ status: 'ready', vms: 2 });
    const metrics = await curl(`http://[::1]:${adminPort}/metrics`);
    expect(metrics).toMatch(/uncloud_metadata_registry_vms 2/);
    expect(metrics).toMatch(/uncloud_metadata_store_connected 1/);
    expect(metrics).toMatch(/uncloud_metadata_store_watch_lag_revisions \d+/);
    expect(metrics).toMatch(/uncloud_metadata_dns_/);
    expect(metrics).toMatch(/uncloud_metadata_http_/);
    // not on the VM-facing listener
    expect(await curl(`http://[::1]:${httpPort}/metrics`, '-o', '/dev/null', '-w', '%{http_code}')).toMatch(/^4/);
  });

  it('drains and exits 0 on SIGTERM', async () => {
    expect(await daemon.stop('SIGTERM')).toBe(0);
    expect(daemon.output()).toMatch(/shutting down/);
  });
});

describe('the embedded demo (npm start)', () => {
  let demo: Running;
  afterAll(async () => { await demo?.stop('SIGKILL'); });

  it('serves metadata on [::1]:1053 and [::1]:8775 with no store configured', async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'uncloud-demo-')), 'demo.json');
    // Exactly what `npm start` runs after its build step (the build itself ran before the suite).
    const start: string = JSON.parse(readFileSync(join(import.meta.dirname, '../../package.json'), 'utf8')).scripts.start;
    const [build, run] = start.split(' && ');
    expect(build).toBe('npm run -s build');
    const [node, bin, ...args] = run.split(' ');
    expect([node, bin]).toEqual(['node', 'dist/cli/main.js']);
    demo = await startBin(args, { env: { UNCLOUD_METADATA_DEMO_STATE: state } });
    expect(demo.output()).toContain('dig @::1 -p 1053 metadata AAAA');
    expect(await dig('@::1', '-p', '1053', 'metadata', 'AAAA')).toBe('::1');
    expect(await dig('@127.0.0.1', '-p', '1053', 'metadata', 'A')).toBe('127.0.0.1');
    const md = JSON.parse(await curl('http://[::1]:8775/openstack/latest/meta_data.json'));
    expect(md.name).toBe('demo-vm');
    expect(await curl('http://127.0.0.1:8775/keys')).toMatch(/^ssh-ed25519 /);
  });
});

describe('serve refuses bad configuration in one line', () => {
  it('names a bad listen address', async () => {
    const r = await exec(process.execPath, [join(import.meta.dirname, '../../dist/cli/main.js'), 'serve', '--store', 'file:/nonexistent/x.json', '--dns', 'not-an-address']).catch((e) => e);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim()).toMatch(/^error: config: serve\.dns\.0: must be ADDR\[:PORT\]/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
