// Least privilege in etcd, as deploy/README.md sets it up: TLS client certificates whose CN is the
// etcd user, auth enabled, users and roles made by deploy/etcd-roles.sh. Each part runs under
// exactly its role and works; each write (or read) outside its role is refused by etcd.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/support/ports.js';
import { etcdArgs } from '../../../test/support/etcd-global.js';
import { BIN, startBin, type Running } from '../../../test/support/daemon.js';
import { eventually, ED25519 } from '../../../test/support/store.js';
import { EtcdKv } from './kv.js';
import { Keys } from '../keys.js';
import { openStore } from '../open.js';
import { Netns } from '../../../test/e2e/netns.js';
import { ensureQemuUser, QEMU_USER } from '../../../test/support/qemu-user.js';
import { startAgent, type Agent } from '../../agent/agent.js';
import { isOurQemu, readPid } from '../../agent/qemu.js';
import { HostSchema, VmStateSchema } from '../../model/schema.js';
import { silentLogger } from '../../log.js';

const exec = promisify(execFile);
const ROLES = join(import.meta.dirname, '../../../deploy/etcd-roles.sh');
const dir = mkdtempSync(join(tmpdir(), 'uncloud-roles-'));
const p = (f: string) => join(dir, f);
const keys = new Keys();
let etcd: ChildProcess | undefined;
let endpoint = '';
const running: Running[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

/** A client certificate whose CN is the etcd user it acts as. */
function clientCert(cn: string): void {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p(`${cn}.key`),
    '-out', p(`${cn}.csr`), '-subj', `/CN=${cn}`);
  writeFileSync(p(`${cn}.ext`), 'extendedKeyUsage=clientAuth\n');
  openssl('x509', '-req', '-in', p(`${cn}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-days', '1', '-out', p(`${cn}.pem`), '-extfile', p(`${cn}.ext`));
}

const tls = (cn: string) => ({ ca: p('ca.pem'), cert: p(`${cn}.pem`), key: p(`${cn}.key`) });
const env = (cn: string) => ({
  UNCLOUD_METADATA_STORE: `etcd://${endpoint}`, UNCLOUD_METADATA_ETCD_CA: p('ca.pem'),
  UNCLOUD_METADATA_ETCD_CERT: p(`${cn}.pem`), UNCLOUD_METADATA_ETCD_KEY: p(`${cn}.key`),
});
const etcdctlEnv = (cn: string) => ({
  ...process.env, ETCDCTL_API: '3', ETCDCTL_ENDPOINTS: `https://${endpoint}`, ETCDCTL_CACERT: p('ca.pem'),
  ETCDCTL_CERT: p(`${cn}.pem`), ETCDCTL_KEY: p(`${cn}.key`),
});
const cli = (cn: string, args: string[]) => exec(process.execPath, [BIN, ...args], { env: { ...process.env, ...env(cn) } })
  .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);
const roles = (...args: string[]) => exec('sh', [ROLES, ...args], { env: etcdctlEnv('root') });

/** What etcd answers a client acting as `cn`: 'ok' or its error. */
async function attempt(cn: string, op: (kv: EtcdKv) => Promise<unknown>): Promise<string> {
  const kv = new EtcdKv({ endpoints: [endpoint], tls: tls(cn) });
  try {
    await op(kv);
    return 'ok';
  } catch (err) {
    return /permission denied/.test((err as Error).message) ? 'permission denied' : (err as Error).message;
  } finally {
    await kv.close();
  }
}
const put = (key: string) => (kv: EtcdKv) => kv.txn({ compares: [], puts: [{ key, value: '{}' }], deletes: [] }).then((r) => {
  if (!r.succeeded) throw new Error('txn failed');
});
const get = (key: string) => (kv: EtcdKv) => kv.get(key);
const range = (prefix: string) => (kv: EtcdKv) => kv.range(prefix);

beforeAll(async () => {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', p('ca.key'), '-out', p('ca.pem'), '-subj', '/CN=uncloud-test-ca');
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p('server.key'),
    '-out', p('server.csr'), '-subj', '/CN=etcd');
  writeFileSync(p('server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-days', '1', '-out', p('server.pem'), '-extfile', p('server.ext'));
  for (const cn of ['root', 'ops', 'appliance-lab', 'hv1']) clientCert(cn);

  const client = await freePort();
  const peer = await freePort();
  endpoint = `127.0.0.1:${client}`;
  etcd = spawn('etcd', etcdArgs({
    name: 'roles', dataDir: p('data'), client, peer, scheme: 'https',
    extra: ['--cert-file', p('server.pem'), '--key-file', p('server.key'), '--client-cert-auth', '--trusted-ca-file', p('ca.pem')],
  }), { stdio: 'ignore' });
  await eventually(async () => {
    const r = await exec('etcdctl', ['endpoint', 'health'], { env: etcdctlEnv('root') });
    return `${r.stdout}${r.stderr}`.includes('is healthy');
  }, 20_000);

  await roles('operator', 'ops');
  await roles('appliance', 'appliance-lab', 'lab');
  await roles('agent', 'hv1');
  await roles('enable-auth');
  // Once more, as an operator re-running it would: nothing breaks.
  await roles('appliance', 'appliance-lab', 'lab');
}, 60_000);

afterAll(async () => {
  for (const r of running) await r.stop('SIGKILL');
  etcd?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

describe('etcd roles from deploy/etcd-roles.sh, with auth on', () => {
  it('an operator writes everything with the CLI; a certificate without a role reads nothing', async () => {
    const ok = async (args: string[]) => {
      const r = await cli('ops', args);
      expect(r.stderr, args.join(' ')).toBe('');
      expect(r.code).toBe(0);
    };
    await ok(['network', 'add', 'lab', '--prefix6', '::/64', '--prefix4', '127.0.0.0/8', '--domain', 'lab.test', '--metadata6', '::2', '--metadata4', '127.0.0.2']);
    await ok(['network', 'add', 'lab2', '--prefix6', '2001:db8:2::/64', '--domain', 'lab2.test', '--metadata6', '2001:db8:2::1']);
    await ok(['network', 'add', 'other', '--prefix6', '2001:db8:3::/64', '--domain', 'other.test', '--metadata6', '2001:db8:3::1']);
    await ok(['user', 'key', 'add', 'alice', 'laptop', ED25519]);
    await ok(['user', 'key', 'add', 'bob', 'laptop', ED25519]);
    await ok(['vm', 'add', 'self', '--network', 'lab', '--owner', 'alice', '--host', 'hv1', '--address', '::1', '--address', '127.0.0.1', '--user-data', '/dev/null']);
    await ok(['vm', 'set', 'self', '--network', 'lab', '--meta', 'role=probe']);
    await ok(['vm', 'add', 'db', '--network', 'other', '--owner', 'bob', '--host', 'hv2']);
    await ok(['vm', 'add', 'x', '--network', 'lab2', '--owner', 'bob', '--host', 'hv1']);
    // A valid certificate of the CA, but no etcd user: etcd refuses it.
    clientCert('stranger');
    expect(await attempt('stranger', get(keys.network('lab')))).toMatch(/permission denied|user name not found|not found/);
  });

  it('the appliance of "lab" serves lab under its role', async () => {
    const [dns, http, admin] = [await freePort(), await freePort(), await freePort()];
    const daemon = await startBin(['serve', '--network', 'lab', '--dns', `[::1]:${dns}`, '--http', `[::1]:${http}`, '--admin', `[::1]:${admin}`],
      { env: env('appliance-lab') });
    running.push(daemon);
    const res = await fetch(`http://[::1]:${http}/keys`);
    expect(await res.text()).toBe(`${ED25519}\n`);
    const meta = await (await fetch(`http://[::1]:${http}/openstack/latest/meta_data.json`)).json() as { meta: Record<string, string> };
    expect(meta.meta).toEqual({ role: 'probe' });
    // It follows changes: an operator's write reaches it through its watch.
    await cli('ops', ['vm', 'set', 'self', '--network', 'lab', '--meta', 'role=changed']);
    await eventually(async () => ((await (await fetch(`http://[::1]:${http}/openstack/latest/meta_data.json`)).json()) as { meta: Record<string, string> }).meta.role === 'changed', 10_000);
    expect(((await (await fetch(`http://[::1]:${admin}/readyz`)).json()) as { status: string }).status).toBe('ready');
    // Its one write: a guest's attribute, through the HTTP PUT a guest makes, lands under its role.
    const ga = `http://[::1]:${http}/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519`;
    const stored = await fetch(ga, { method: 'PUT', headers: { 'Metadata-Flavor': 'Google' }, body: ED25519.split(' ')[1] });
    expect(stored.status).toBe(200);
    await eventually(async () => (await fetch(ga, { headers: { 'Metadata-Flavor': 'Google' } })).status === 200, 10_000);
  });

  it('the appliance\'s role refuses every write but its guests\' attributes, and reads outside its network', async () => {
    const a = 'appliance-lab';
    expect(await attempt(a, get(keys.vm('lab', 'self')))).toBe('ok');
    expect(await attempt(a, put(keys.vm('lab', 'evil')))).toBe('permission denied');
    expect(await attempt(a, put(keys.network('lab')))).toBe('permission denied');
    expect(await attempt(a, put(keys.guestAttributes('lab2', 'x')))).toBe('permission denied');
    expect(await attempt(a, put(keys.owner('lab', 'alice')))).toBe('permission denied');
    expect(await attempt(a, get(keys.network('lab2')))).toBe('permission denied');
    expect(await attempt(a, range(keys.vmsOf('lab2')))).toBe('permission denied');
    expect(await attempt(a, range(keys.vmsOf('other')))).toBe('permission denied');
    expect(await attempt(a, get(keys.user('alice')))).toBe('permission denied');
    expect(await attempt(a, range(keys.hosts))).toBe('permission denied');
    expect(await attempt(a, range(keys.root))).toBe('permission denied');
  });

  it('an appliance whose role cannot read a network fails at start with one line naming the range', async () => {
    const [dns, http, admin] = [await freePort(), await freePort(), await freePort()];
    const r = await cli('appliance-lab', ['serve', '--network', 'other', '--dns', `[::1]:${dns}`, '--http', `[::1]:${http}`, '--admin', `[::1]:${admin}`]);
    expect(r.code).not.toBe(0);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error:'));
    expect(errors).toEqual([expect.stringMatching(/^error: etcd:\/\/127\.0\.0\.1:\d+ refused to let this process read \/uncloud\/networks\/other \(.*permission denied\): grant it in the etcd role$/)]);
  });

  describe('the agent of hv1, under its role', () => {
    let ns: Netns | undefined;
    let agent: Agent | undefined;
    const stateDir = mkdtempSync(join(tmpdir(), 'uncloud-roles-agent-'));
    const store = () => openStore(`etcd://${endpoint}`, { tls: tls('hv1') });
    afterAll(async () => {
      await agent?.stop();
      for (const vm of ['self', 'x']) {
        const pid = readPid(join(stateDir, 'lab', vm));
        if (pid && isOurQemu(pid, `lab/${vm}`)) process.kill(pid, 'SIGKILL');
      }
      await ns?.delete();
      rmSync(stateDir, { recursive: true, force: true });
    });

    it('runs its VMs from their launch specs, writes its reports and its leased heartbeat', async () => {
      ensureQemuUser();
      ns = await Netns.create('ucrol');
      const s = store();
      agent = await startAgent({
        store: s, host: 'hv1', stateDir, accel: 'tcg', log: silentLogger(), imageDirs: [], user: QEMU_USER,
        qemu: ns.wrapper('qemu-system-x86_64'), ip: ns.wrapper('ip'), nft: ns.wrapper('nft'), cat: ns.wrapper('cat'),
        sweepMs: 200, stopTimeoutMs: 1000, backoffMs: 200, heartbeatTtlSeconds: 2,
      });
      const ops = openStore(`etcd://${endpoint}`, { tls: tls('ops') });
      try {
        const state = async (net: string, vm: string) => {
          const e = await ops.kv.get(keys.vmState('hv1', net, vm));
          return e ? VmStateSchema.parse(JSON.parse(e.value)) : undefined;
        };
        await eventually(async () => (await state('lab', 'self'))?.state === 'running' && (await state('lab2', 'x'))?.state === 'running', 30_000);
        expect(agent.ready()).toBe(true);
        const hb = await ops.kv.get(keys.host('hv1'));
        expect(HostSchema.parse(JSON.parse(hb!.value))).toMatchObject({ name: 'hv1', vms: 2 });
        // Moved to another host: the agent stops it and clears its report (a delete under its role).
        await cli('ops', ['vm', 'set', 'x', '--network', 'lab2', '--host', 'hv2']);
        await eventually(async () => !(await state('lab2', 'x')), 30_000);
      } finally {
        await ops.kv.close();
      }
    }, 90_000);

    it('its role refuses user-data, other hosts, and every write but its reports and heartbeat', async () => {
      const h = 'hv1';
      expect(await attempt(h, get(keys.launch('hv1', 'lab', 'self')))).toBe('ok');
      expect(await attempt(h, get(keys.hostNetwork('hv1', 'lab')))).toBe('ok');
      // Not even the network records: only its host's copies of the networks its VMs use.
      expect(await attempt(h, get(keys.network('lab')))).toBe('permission denied');
      expect(await attempt(h, range(keys.network('')))).toBe('permission denied');
      expect(await attempt(h, get(keys.hostNetwork('hv2', 'other')))).toBe('permission denied');
      expect(await attempt(h, put(keys.hostNetwork('hv1', 'lab')))).toBe('permission denied');
      expect(await attempt(h, get(keys.vm('lab', 'self')))).toBe('permission denied');
      expect(await attempt(h, range(keys.vmsOf('lab')))).toBe('permission denied');
      expect(await attempt(h, range(keys.launchesOf('hv2')))).toBe('permission denied');
      expect(await attempt(h, get(keys.user('alice')))).toBe('permission denied');
      expect(await attempt(h, put(keys.launch('hv1', 'lab', 'evil')))).toBe('permission denied');
      expect(await attempt(h, put(keys.vmState('hv2', 'other', 'db')))).toBe('permission denied');
      expect(await attempt(h, put(keys.host('hv2')))).toBe('permission denied');
      expect(await attempt(h, put(keys.network('lab')))).toBe('permission denied');
      expect(await attempt(h, put(keys.vm('lab', 'evil')))).toBe('permission denied');
    });
  });
});
