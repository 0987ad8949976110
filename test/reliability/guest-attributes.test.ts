// GCE guest attributes through the real `serve` on its own etcd: a guest PUTs exactly as Google's
// guest agent does (instance_setup.go: PUT instance/guest-attributes/hostkeys/<type> with the key's
// base64 blob and Metadata-Flavor: Google), reads back as GCE answers, never sees another VM's;
// every bad write is refused with nothing stored; a flood from one VM slows no other; attributes
// survive an appliance restart, vanish with the VM, and fail loudly (503) while etcd is down.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore, type OpenedStore } from '../../src/store/open.js';
import { StoreWriter } from '../../src/store/writer.js';
import { MAX_RECORD_BYTES, putGuestAttribute, readGuestAttributes } from '../../src/store/guest-attributes.js';
import { BIN } from '../support/daemon.js';
import { ED25519 } from '../support/store.js';
import { httpGet, OwnEtcd, startDaemon, type Daemon } from './support.js';

const PREFIX = '/ga';
const BLOB = ED25519.split(' ')[1];
const GOOGLE = { 'Metadata-Flavor': 'Google' };
const GA = '/computeMetadata/v1/instance/guest-attributes';

describe('guest attributes', () => {
  let etcd: OwnEtcd;
  let store: OpenedStore;
  let writer: StoreWriter;
  let daemon: Daemon;
  const v6 = () => `http://[::1]:${daemon.httpPort}`;
  const v4 = () => `http://127.0.0.1:${daemon.httpPort}`;
  const put = (base: string, path: string, body: string | Buffer, headers: Record<string, string> = GOOGLE, from?: string) =>
    httpPut(`${base}${GA}/${path}`, body, headers, from);
  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args, '--store', etcd.url, '--prefix', PREFIX], { encoding: 'utf8', env: { ...process.env, UNCLOUD_METADATA_STORE: '' } });

  beforeAll(async () => {
    etcd = await OwnEtcd.start();
    store = openStore(etcd.url, { prefix: PREFIX });
    writer = new StoreWriter(store.kv, store.keys);
    await writer.addNetwork({ name: 'ga', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'ga.test', metadata6: '::2', metadata4: '127.0.0.2' });
    await writer.addVm({ name: 'self', network: 'ga', addresses: ['::1'] });
    await writer.addVm({ name: 'other', network: 'ga', addresses: ['127.0.0.1'] });
    daemon = await startDaemon(etcd.url, PREFIX);
  });
  afterAll(async () => {
    await daemon?.run.stop('SIGKILL');
    await store?.kv.close();
    await etcd?.close();
  });

  it("takes Google's guest agent's host key PUT and reads it back as GCE does, to that VM only", async () => {
    expect((await put(v6(), 'hostkeys/ssh-ed25519', BLOB)).status).toBe(200);
    const list = await httpGet(`${v6()}${GA}/`, { headers: GOOGLE });
    expect([list.status, list.body, list.headers['metadata-flavor']]).toEqual([200, 'hostkeys/\n', 'Google']);
    expect((await httpGet(`${v6()}${GA}/hostkeys/`, { headers: GOOGLE })).body).toBe('ssh-ed25519\n');
    expect((await httpGet(`${v6()}${GA}/hostkeys/ssh-ed25519`, { headers: GOOGLE })).body).toBe(BLOB);
    expect(JSON.parse((await httpGet(`${v6()}${GA}/?recursive=true`, { headers: GOOGLE })).body)).toEqual({ hostkeys: { 'ssh-ed25519': BLOB } });
    // The other VM sees none of it, and its writes land on itself.
    expect((await httpGet(`${v4()}${GA}/hostkeys/ssh-ed25519`, { headers: GOOGLE })).status).toBe(404);
    expect((await httpGet(`${v4()}${GA}/`, { headers: GOOGLE })).body).toBe('');
    expect((await put(v4(), 'app/status', 'ready')).status).toBe(200);
    expect((await httpGet(`${v6()}${GA}/app/status`, { headers: GOOGLE })).status).toBe(404);
    // The operator's view.
    const shown = cli('vm', 'attributes', 'self', '--json');
    expect(shown.status).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual({ hostkeys: { 'ssh-ed25519': BLOB } });
    const known = cli('vm', 'known-hosts', 'self');
    expect(known.stdout).toMatch(new RegExp(`^self,self\\.ga\\.test,::[0-9a-f:]+,::1 ssh-ed25519 ${BLOB.replace(/[+/]/g, '\\$&')}\n$`));
    // The same keys as DNS SSHFP records, equal to what ssh-keygen -r makes of the key (SHA-256 lines).
    const keyFile = join(mkdtempSync(join(tmpdir(), 'uc-ga-')), 'host.pub');
    writeFileSync(keyFile, `ssh-ed25519 ${BLOB}\n`);
    const want = execFileSync('ssh-keygen', ['-r', 'self.ga.test', '-f', keyFile], { encoding: 'utf8' })
      .split('\n').filter((l) => / SSHFP \d+ 2 /.test(l)).map((l) => l.split(' SSHFP ')[1].toLowerCase());
    const dug = execFileSync('dig', ['+short', '+tries=1', '+time=3', '@::1', '-p', String(daemon.dnsPort), 'self.ga.test', 'SSHFP'], { encoding: 'utf8' })
      .trim().split('\n').map((l) => { const [a, t, ...hex] = l.split(' '); return `${a} ${t} ${hex.join('').toLowerCase()}`; });
    expect(want).toHaveLength(1);
    expect(dug).toEqual(want);
    const none = cli('vm', 'known-hosts', 'other');
    expect([none.status, none.stderr]).toEqual([1, 'error: VM "other" has published no SSH host keys (guest attributes hostkeys/)\n']);
  });

  it('refuses bad writes with a 4xx and stores nothing', async () => {
    const before = JSON.parse(cli('vm', 'attributes', 'self', '--json').stdout);
    const cases: [string, string | Buffer, Record<string, string>, number][] = [
      ['app/big', 'x'.repeat(4097), GOOGLE, 413],
      ['app/nul', 'a\0b', GOOGLE, 400],
      ['app/latin1', Buffer.from([0x66, 0xe9, 0x65]), GOOGLE, 400],
      ['app/a/b', 'x', GOOGLE, 400],
      ['app', 'x', GOOGLE, 400],
      ['bad%20ns/key', 'x', GOOGLE, 400],
      ['app/noflavour', 'x', {}, 403],
      ['app/proxied', 'x', { ...GOOGLE, 'X-Forwarded-For': '10.0.0.1' }, 403],
      // A valid GCE name, but no plain object key: it was answered 200 and silently not stored.
      ['__proto__/k', 'x', GOOGLE, 400],
      ['app/__proto__', 'x', GOOGLE, 400],
    ];
    for (const [path, body, headers, status] of cases) expect([path, (await put(v6(), path, body, headers)).status]).toEqual([path, status]);
    expect(JSON.parse(cli('vm', 'attributes', 'self', '--json').stdout)).toEqual(before);
  });

  it('reads only stored names, never what every object inherits', async () => {
    // self holds hostkeys/ssh-ed25519 from the first test; these were answered 200 with
    // "function toString() { [native code] }", "Object" and empty listings.
    for (const path of ['hostkeys/toString', 'hostkeys/constructor', 'hostkeys/__proto__', 'constructor', 'constructor/name', 'toString', '__proto__', 'hasOwnProperty/x']) {
      const r = await httpGet(`${v6()}${GA}/${path}`, { headers: GOOGLE });
      expect([path, r.status]).toEqual([path, 404]);
    }
    expect((await httpGet(`${v6()}${GA}/hostkeys/ssh-ed25519`, { headers: GOOGLE })).body).toBe(BLOB);
  });

  it('limits keys per VM and write rate per VM, without slowing another VM', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) statuses.push((await put(v4(), `load/k${i}`, 'v')).status);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    expect(statuses.slice(0, 9).every((s) => s === 200)).toBe(true); // the burst
    // The other VM is not slowed: its next write goes through at once.
    expect((await put(v6(), 'app/after-flood', 'ok')).status).toBe(200);
    const stored = JSON.parse(cli('vm', 'attributes', 'other', '--json').stdout);
    expect(Object.keys(stored.load).length).toBe(statuses.filter((s) => s === 200).length);
  });

  it('holds at most maxKeys per VM, checked in the write transaction itself', async () => {
    const vm = await writer.addVm({ name: 'capped', network: 'ga' });
    expect(await putGuestAttribute(store.kv, store.keys, vm, 'a', 'one', '1', 2)).toBeUndefined();
    expect(await putGuestAttribute(store.kv, store.keys, vm, 'b', 'two', '2', 2)).toBeUndefined();
    expect(await putGuestAttribute(store.kv, store.keys, vm, 'a', 'one', 'changed', 2)).toBeUndefined(); // a rewrite is no new key
    expect(await putGuestAttribute(store.kv, store.keys, vm, 'c', 'three', '3', 2)).toEqual({ status: 409, message: 'a VM holds at most 2 guest attributes' });
    expect(await readGuestAttributes(store.kv, store.keys, vm)).toEqual({ a: { one: 'changed' }, b: { two: '2' } });
    // A VM re-created under the name never sees its predecessor's attributes.
    await writer.removeVm('capped');
    const again = await writer.addVm({ name: 'capped', network: 'ga' });
    expect(await readGuestAttributes(store.kv, store.keys, again)).toEqual({});
    expect(await putGuestAttribute(store.kv, store.keys, vm, 'a', 'one', 'stale', 2)).toEqual({ status: 404, message: 'no such VM' });
  });

  it("bounds a VM's whole record, so no write re-stores more than 64 KiB; the same value again stores nothing", async () => {
    // Every write stores the whole record again and etcd keeps each version until compacted:
    // 64 keys of 4 KiB made each write 256 KiB (one guest filled an 8 MiB quota in 90 s).
    const vm = await writer.addVm({ name: 'heavy', network: 'ga' });
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await putGuestAttribute(store.kv, store.keys, vm, 'fill', `k${i}`, 'x'.repeat(4096), 64));
    const stored = results.filter((r) => r === undefined).length;
    expect(stored).toBeGreaterThanOrEqual(14);
    expect(results.slice(stored)).toEqual(Array(20 - stored).fill({ status: 413, message: `a VM's guest attributes are at most ${MAX_RECORD_BYTES} bytes in all` }));
    const key = store.keys.guestAttributes('ga', 'heavy');
    const before = await store.kv.get(key);
    expect(Buffer.byteLength(before!.value)).toBeLessThanOrEqual(MAX_RECORD_BYTES);
    expect(await putGuestAttribute(store.kv, store.keys, vm, 'fill', 'k0', 'x'.repeat(4096), 64)).toBeUndefined();
    expect((await store.kv.get(key))!.modRevision).toBe(before!.modRevision);
    await writer.removeVm('heavy');
  });

  it('asks a VM that requires tokens for one on writes', async () => {
    await writer.setVm('self', 'ga', { requireToken: true });
    await new Promise((r) => setTimeout(r, 500));
    expect((await put(v6(), 'app/tokenless', 'x')).status).toBe(401);
    const token = (await httpGet(`${v6()}/latest/api/token`, { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '60' } })).body;
    expect((await put(v6(), 'app/with-token', 'x', { ...GOOGLE, 'X-aws-ec2-metadata-token': token })).status).toBe(200);
    await writer.setVm('self', 'ga', { requireToken: false });
  });

  it('survives an appliance restart, vanishes with the VM, and answers 503 while etcd is down', async () => {
    await daemon.run.stop('SIGTERM');
    daemon = await startDaemon(etcd.url, PREFIX);
    expect((await httpGet(`${v6()}${GA}/hostkeys/ssh-ed25519`, { headers: GOOGLE })).body).toBe(BLOB);
    await etcd.kill();
    const down = await put(v6(), 'app/while-down', 'x');
    expect(down.status).toBe(503);
    await etcd.up();
    await writer.removeVm('self');
    const left = await store.kv.range(`${PREFIX}/vms/ga/.attributes/`);
    expect(left.entries.map((e) => e.key)).toEqual([`${PREFIX}/vms/ga/.attributes/other`]);
  });
});

function httpPut(url: string, body: string | Buffer, headers: Record<string, string>, from?: string): Promise<{ status: number; body: string }> {
  return httpGet(url, { method: 'PUT', headers: { ...headers, 'content-type': 'text/plain' }, localAddress: from, body });
}
