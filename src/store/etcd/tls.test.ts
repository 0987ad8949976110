// TLS client certificates to etcd: an etcd that demands them, certificates made by openssl, the
// CLI and a watching registry connecting with UNCLOUD_METADATA_ETCD_{CA,CERT,KEY}.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../test/support/ports.js';
import { etcdArgs } from '../../../test/support/etcd-global.js';
import { BIN } from '../../../test/support/daemon.js';
import { eventually } from '../../../test/support/store.js';
import { openStore } from '../open.js';
import { Registry } from '../../registry/registry.js';
import { silentLogger } from '../../log.js';

const exec = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'uncloud-tls-'));
const p = (f: string) => join(dir, f);
let etcd: ChildProcess | undefined;
let endpoint = '';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

function makeCerts(): void {
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', p('ca.key'), '-out', p('ca.pem'), '-subj', '/CN=uncloud-test-ca');
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'], ['client', 'extendedKeyUsage=clientAuth']]) {
    openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', p(`${name}.key`),
      '-out', p(`${name}.csr`), '-subj', `/CN=${name}`);
    writeFileSync(p(`${name}.ext`), `${ext}\n`);
    openssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
      '-days', '1', '-out', p(`${name}.pem`), '-extfile', p(`${name}.ext`));
  }
}

beforeAll(async () => {
  makeCerts();
  const client = await freePort();
  const peer = await freePort();
  endpoint = `127.0.0.1:${client}`;
  etcd = spawn('etcd', etcdArgs({
    name: 'tls', dataDir: p('data'), client, peer, scheme: 'https',
    extra: ['--cert-file', p('server.pem'), '--key-file', p('server.key'), '--client-cert-auth', '--trusted-ca-file', p('ca.pem')],
  }), { stdio: 'ignore' });
  await eventually(async () => {
    const r = await exec('etcdctl', ['--endpoints', `https://${endpoint}`, '--cacert', p('ca.pem'), '--cert', p('client.pem'), '--key', p('client.key'), 'endpoint', 'health'], { env: { ...process.env, ETCDCTL_API: '3' } });
    return r.stdout.includes('is healthy') || r.stderr.includes('is healthy');
  }, 20_000);
});

afterAll(() => {
  etcd?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const tlsEnv = () => ({ UNCLOUD_METADATA_STORE: `etcd://${endpoint}`, UNCLOUD_METADATA_ETCD_CA: p('ca.pem'), UNCLOUD_METADATA_ETCD_CERT: p('client.pem'), UNCLOUD_METADATA_ETCD_KEY: p('client.key') });

describe('etcd with TLS client certificates', () => {
  it('the CLI writes with a client certificate', async () => {
    const r = await exec(process.execPath, [BIN, 'network', 'add', 'sec', '--prefix6', '2001:db8:5::/64', '--domain', 'sec.example', '--metadata6', '2001:db8:5::1'], { env: { ...process.env, ...tlsEnv() } });
    expect(r.stdout).toMatch(/network sec added/);
    expect(r.stderr).toBe('');
  });

  it('a registry follows it over TLS', async () => {
    const store = openStore(`etcd://${endpoint}`, { tls: { ca: p('ca.pem'), cert: p('client.pem'), key: p('client.key') } });
    const registry = new Registry({ log: silentLogger() });
    const source = store.source(silentLogger());
    await source.start(registry);
    expect(registry.network('sec')).toBeDefined();
    await exec(process.execPath, [BIN, 'vm', 'add', 'v1', '--network', 'sec'], { env: { ...process.env, ...tlsEnv() } });
    await eventually(() => registry.vmByName('sec', 'v1'));
    await source.close();
    await store.kv.close();
  });

  it('without a client certificate it is refused, in one line', async () => {
    const env = { ...process.env, ...tlsEnv(), UNCLOUD_METADATA_ETCD_CERT: '', UNCLOUD_METADATA_ETCD_KEY: '' };
    const r = await exec(process.execPath, [BIN, 'network', 'list'], { env }).catch((e) => e);
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toMatch(/^error: store unavailable/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
