// Instance identity end to end, as a VM and a third party use it: `serve` (the built binary) on
// etcd with a key file; the VM asks with Google's gcp-metadata and AWS's MetadataService; the
// verifier finds the keys by OpenID discovery on the admin listener (jose) and checks the EC2
// document with openssl against `identity cert`; the CLI prints and verifies.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { etcdTestStore, ED25519 } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { BIN, startBin, type Running } from '../../test/support/daemon.js';
import { curl, nodeScript } from '../http/testing/clients.js';

const exec = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'uncloud-serve-identity-'));
const AUD = 'https://vault.example/v1/auth/jwt';

function cli(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, UNCLOUD_METADATA_STORE: '' } });
}

describe('instance identity through serve', () => {
  const t = etcdTestStore();
  let daemon: Running;
  let httpPort = 0;
  let adminPort = 0;
  let issuer = '';
  const config = join(dir, 'config.yaml');
  let vmId = '';

  beforeAll(async () => {
    const keyFile = join(dir, 'keys.pem');
    const key = (t: 'rsa' | 'ec') => (t === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' }))
      .privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    writeFileSync(keyFile, key('rsa') + key('ec') + key('rsa'));
    await t.writer.addNetwork({ name: 'idn', prefix6: '::/64', domain: 'idn.test', metadata6: '::2' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    vmId = (await t.writer.addVm({ name: 'self', network: 'idn', owner: 'alice', host: 'hv1', addresses: ['::1'] })).id;
    [httpPort, adminPort] = [await freePort(), await freePort()];
    issuer = `http://[::1]:${adminPort}`;
    writeFileSync(config, `identity:\n  keyFile: ${keyFile}\n  issuer: "${issuer}"\n  accountId: "123456789012"\n`);
    daemon = await startBin(['serve', '--config', config, '--store', t.url, '--prefix', t.prefix,
      '--dns', `[::1]:${await freePort()}`, '--http', `[::1]:${httpPort}`, '--admin', `[::1]:${adminPort}`]);
  });
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await t.close();
  });

  it("Google's gcp-metadata gets a token that verifies by OpenID discovery, audience and all", async () => {
    const out = await nodeScript(`
import * as gcp from 'gcp-metadata';
const token = await gcp.instance({ property: 'service-accounts/default/identity', params: { audience: '${AUD}', format: 'full' } });
console.log(JSON.stringify({ token }));
`, { GCE_METADATA_HOST: `[::1]:${httpPort}`, METADATA_SERVER_DETECTION: 'assume-present' }, repo) as { token: string };
    const discovery = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json() as { issuer: string; jwks_uri: string };
    expect(discovery.issuer).toBe(issuer);
    const { payload } = await jwtVerify(out.token, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer, audience: AUD });
    expect(payload).toMatchObject({ sub: vmId, uncloud: { vm: { id: vmId, name: 'self', network: 'idn', owner: 'alice', host: 'hv1' } } });
    await expect(jwtVerify(out.token, createRemoteJWKSet(new URL(discovery.jwks_uri)), { issuer, audience: 'https://elsewhere' })).rejects.toThrow();
    // The CLI verifies with the same key file: exit 0, or 1 with one line.
    const ok = cli(['identity', 'verify', out.token, '--audience', AUD, '--config', config]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(new RegExp(`^valid: sub ${vmId}`));
    const bad = cli(['identity', 'verify', out.token, '--audience', 'nope', '--config', config]);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/invalid: .*aud/);
    const jwks = JSON.parse(cli(['identity', 'jwks', '--config', config]).stdout);
    expect(jwks).toEqual(await (await fetch(`${issuer}/.well-known/jwks.json`)).json());
    expect(jwks.keys).toHaveLength(3);
  });

  it('refuses a token request without audience or flavour header; the native path serves the same token', async () => {
    const base = `http://[::1]:${httpPort}`;
    const gce = `${base}/computeMetadata/v1/instance/service-accounts/default/identity`;
    expect((await curl(gce, { headers: { 'Metadata-Flavor': 'Google' } })).status).toBe(400);
    expect((await curl(`${gce}?audience=${encodeURIComponent(AUD)}`)).status).toBe(403);
    expect((await curl(`${gce}?audience=${encodeURIComponent(AUD)}&format=weird`, { headers: { 'Metadata-Flavor': 'Google' } })).status).toBe(400);
    const native = await curl(`${base}/identity?audience=${encodeURIComponent(AUD)}`);
    expect(native.status).toBe(200);
    const { payload } = await jwtVerify(native.body, createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`)), { issuer, audience: AUD });
    expect(payload.sub).toBe(vmId);
    expect(payload.uncloud).toBeUndefined();
  });

  it('a VM asking tokens for ever new audiences gets 429 past its signing budget, and still its cached ones', async () => {
    const gce = `http://[::1]:${httpPort}/computeMetadata/v1/instance/service-accounts/default/identity`;
    const headers = { 'Metadata-Flavor': 'Google' };
    // All at once, so the budget's refill during the run is negligible beside the 50 asked (50:
    // below the 64 connections one client address may hold open).
    const statuses = await Promise.all([...Array(50).keys()].map(async (i) => (await fetch(`${gce}?audience=https://flood.example/${i}`, { headers })).status));
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(10);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    const limited = await curl(`${gce}?audience=https://flood.example/next`, { headers });
    expect([limited.status, limited.headers['retry-after'], limited.headers['metadata-flavor']]).toEqual([429, '1', 'Google']);
    expect((await curl(`${gce}?audience=${encodeURIComponent(AUD)}`, { headers })).status).toBe(200);
  });

  it("AWS's MetadataService gets a PKCS#7 that openssl verifies against `identity cert`", async () => {
    const out = await nodeScript(`
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
const md = new MetadataService({ endpoint: 'http://[::1]:${httpPort}', retries: 0 });
const out = {};
for (const p of ['document', 'pkcs7', 'rsa2048', 'signature']) out[p] = await md.request('/latest/dynamic/instance-identity/' + p, {});
out.listing = await md.request('/latest/dynamic/instance-identity/', {});
out.dated = await md.request('/2021-03-23/dynamic/instance-identity/pkcs7', {});
console.log(JSON.stringify(out));
`, {}, repo) as Record<string, string>;
    const cert = cli(['identity', 'cert', '--config', config]);
    expect(cert.status).toBe(0);
    writeFileSync(join(dir, 'cert.pem'), cert.stdout);
    writeFileSync(join(dir, 'document'), out.document);
    expect(JSON.parse(out.document).accountId).toBe('123456789012');
    expect(out.listing.split('\n')).toEqual(['document', 'pkcs7', 'rsa2048', 'signature']);
    expect(out.dated).toBe(out.pkcs7);
    for (const p of ['pkcs7', 'rsa2048']) {
      writeFileSync(join(dir, p), `-----BEGIN PKCS7-----\n${out[p]}\n-----END PKCS7-----\n`);
      const { stderr } = await exec('openssl', ['smime', '-verify', '-in', join(dir, p), '-inform', 'PEM', '-content', join(dir, 'document'), '-certfile', join(dir, 'cert.pem'), '-noverify']);
      expect(stderr).toMatch(/Verification successful/);
    }
  });

  it('a key file that cannot be used stops serve with one line', async () => {
    const broken = join(dir, 'broken.yaml');
    writeFileSync(join(dir, 'garbage.pem'), 'not a key\n');
    writeFileSync(broken, `identity:\n  keyFile: ${join(dir, 'garbage.pem')}\n  issuer: "https://x.example"\n`);
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', broken, '--store', t.url, '--prefix', t.prefix, '--dns', `[::1]:${await freePort()}`, '--http', `[::1]:${await freePort()}`, '--admin', `[::1]:${await freePort()}`], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/^error: .*garbage\.pem: no private key in the file\n$/);
    const none = cli(['identity', 'jwks']);
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/^error: no identity.keyFile configured/);
  });
});
