// `serve` with default listeners also answers on fe80::a9fe:a9fe of each network's bridge and on
// 169.254.169.254, when the host holds them: the built binary inside an "appliance" namespace
// with the network's bridge, a "guest" namespace on that bridge with the VM's MAC, a file store
// written by the CLI. The guest reaches its metadata by the link-local literal (identified by its
// EUI-64 link-local on the bridge) and by 169.254.169.254 (by its IPv4 address).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN } from '../../test/support/daemon.js';
import { run } from '../http/testing/clients.js';
import { LINK_LOCAL4, LINK_LOCAL6 } from './well-known.js';

const id = randomBytes(3).toString('hex');
const APP = `ucwa-${id}`;
const GUEST = `ucwg-${id}`;
const BRIDGE = `ucwb${id}`;
const PORT_A = `ucwp${id}`; // bridge port, appliance side
const GUEST_IF = `ucwe${id}`;
const MAC = '52:54:00:57:00:01';
const dir = mkdtempSync(join(tmpdir(), 'uc-wellknown-'));
const store = `file:${join(dir, 'state.json')}`;
let daemon: ChildProcess | undefined;
let out = '';

async function sh(...args: string[]): Promise<void> {
  const r = await run(args[0], args.slice(1));
  if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stderr}`);
}
const cli = (...args: string[]) => sh(process.execPath, BIN, ...args, '--store', store);

beforeAll(async () => {
  await cli('network', 'add', 'wk', '--prefix6', 'fd00:776b::/64', '--prefix4', '10.215.0.0/24', '--domain', 'wk.test',
    '--metadata6', 'fd00:776b::53', '--metadata4', '10.215.0.1', '--bridge', BRIDGE);
  await cli('vm', 'add', 'guest', '--network', 'wk', '--mac', MAC, '--address', '10.215.0.10');

  for (const ns of [APP, GUEST]) {
    await sh('ip', 'netns', 'add', ns);
    await sh('ip', '-n', ns, 'link', 'set', 'lo', 'up');
  }
  await sh('ip', '-n', APP, 'link', 'add', BRIDGE, 'type', 'bridge');
  await sh('ip', '-n', APP, 'link', 'set', BRIDGE, 'addrgenmode', 'none');
  await sh('ip', 'link', 'add', PORT_A, 'netns', APP, 'type', 'veth', 'peer', 'name', GUEST_IF, 'netns', GUEST);
  await sh('ip', '-n', APP, 'link', 'set', PORT_A, 'master', BRIDGE);
  await sh('ip', '-n', GUEST, 'link', 'set', GUEST_IF, 'address', MAC);
  for (const a of [`${LINK_LOCAL6}/64`, 'fd00:776b::53/64']) await sh('ip', '-n', APP, 'addr', 'add', a, 'dev', BRIDGE, 'nodad');
  for (const a of ['10.215.0.1/24', `${LINK_LOCAL4}/32`]) await sh('ip', '-n', APP, 'addr', 'add', a, 'dev', BRIDGE);
  await sh('ip', '-n', GUEST, 'addr', 'add', '10.215.0.10/24', 'dev', GUEST_IF);
  for (const [ns, dev] of [[APP, BRIDGE], [APP, PORT_A], [GUEST, GUEST_IF]]) await sh('ip', '-n', ns, 'link', 'set', dev, 'up');
  await sh('ip', '-n', GUEST, 'route', 'add', `${LINK_LOCAL4}/32`, 'dev', GUEST_IF);
  // The guest's kernel-made EUI-64 link-local must finish DAD before it is a usable source.
  for (let i = 0; ; i++) {
    const r = await run('ip', ['-n', GUEST, '-6', 'addr', 'show', 'dev', GUEST_IF, 'scope', 'link']);
    if (r.stdout.includes('fe80::5054:ff:fe57:1') && !r.stdout.includes('tentative')) break;
    if (i > 100) throw new Error(`no link-local on the guest: ${r.stdout}`);
    await new Promise((res) => setTimeout(res, 100));
  }

  daemon = spawn('ip', ['netns', 'exec', APP, process.execPath, BIN, 'serve', '--store', store, '--admin', '[::1]:9153'], {
    env: { ...process.env, UNCLOUD_METADATA_STORE: '' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  daemon.stdout!.on('data', (b) => (out += b));
  daemon.stderr!.on('data', (b) => (out += b));
  const deadline = Date.now() + 30_000;
  while (!out.includes('"msg":"serving"')) {
    if (daemon.exitCode !== null || Date.now() > deadline) throw new Error(`serve did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}, 60_000);

afterAll(async () => {
  if (daemon && daemon.exitCode === null) {
    const exited = new Promise((r) => daemon!.once('exit', r));
    daemon.kill('SIGTERM');
    await exited;
  }
  for (const ns of [APP, GUEST]) await run('ip', ['netns', 'del', ns]);
  rmSync(dir, { recursive: true, force: true });
});

const guestCurl = async (url: string) => {
  const r = await run('ip', ['netns', 'exec', GUEST, 'curl', '-sS', '-g', '--max-time', '10', '-w', '\n%{http_code}', url]);
  const lines = r.stdout.split('\n');
  return { code: r.code, status: Number(lines.at(-1)), body: lines.slice(0, -1).join('\n'), err: r.stderr };
};

describe('well-known metadata addresses', () => {
  it('listens on fe80::a9fe:a9fe of the bridge and on 169.254.169.254 besides the metadata addresses', () => {
    const serving = JSON.parse(out.split('\n').find((l) => l.includes('"msg":"serving"'))!);
    expect(serving.http).toEqual(expect.arrayContaining([
      { host: 'fd00:776b::53', port: 80 }, { host: '10.215.0.1', port: 80 },
      { host: `${LINK_LOCAL6}%${BRIDGE}`, port: 80 }, { host: LINK_LOCAL4, port: 80 },
    ]));
  });

  it('serves the guest at http://[fe80::a9fe:a9fe%25<iface>]/ by its EUI-64 link-local', async () => {
    const r = await guestCurl(`http://[${LINK_LOCAL6}%25${GUEST_IF}]/openstack/latest/meta_data.json`);
    expect(r.status, r.err).toBe(200);
    expect(JSON.parse(r.body).name).toBe('guest');
  });

  it('serves the guest at http://169.254.169.254/ by its IPv4 address', async () => {
    const r = await guestCurl(`http://${LINK_LOCAL4}/latest/meta-data/local-hostname`);
    expect(r.status, r.err).toBe(200);
    expect(r.body).toBe('guest.wk.test');
  });
});
