// Instance identity as a third party checks it: tokens verified by jose against the published
// key set (audience, issuer, expiry), EC2 documents verified by openssl exactly as AWS documents.
import { describe, expect, it, beforeAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { InstanceIdentity, SigningRateLimited, SIGNING_BURST } from './signer.js';
import { IdentityKeyError } from './keys.js';

const dir = mkdtempSync(join(tmpdir(), 'uncloud-identity-'));
const pemOf = (k: ReturnType<typeof generateKeyPairSync>) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
const rsaOld = generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaNew = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const keyFile = join(dir, 'keys.pem');
writeFileSync(keyFile, [pemOf(rsaOld), pemOf(ec), pemOf(ed), pemOf(rsaNew)].join(''));
const VM = { id: '8a6e0804-2bd0-4672-b79d-d97027f9071a', name: 'web1', network: 'lab', owner: 'alice', host: 'hv1', createdAt: '2026-11-27T10:00:00.000Z' };
const ISSUER = 'https://metadata.lab.example';
const base = { keyFile, issuer: ISSUER, accountId: '123456789012' };

function openssl(args: string[], input?: string) {
  return spawnSync('openssl', args, { input, encoding: 'utf8' });
}

describe('identity tokens', () => {
  let id: InstanceIdentity;
  beforeAll(async () => { id = (await InstanceIdentity.load({ ...base, alg: 'RS256' }))!; });

  it('verify against the published JWKS with the newest key of the algorithm, every key published', async () => {
    const token = await id.token(VM, 1, 'https://vault.example/v1/auth/jwt', false);
    const header = decodeProtectedHeader(token);
    expect(header.alg).toBe('RS256');
    expect(header.kid).toBe(id.keys.newest('RS256')!.kid);
    expect(id.jwks().keys).toHaveLength(4);
    const jwks = createLocalJWKSet(JSON.parse(JSON.stringify(id.jwks())));
    const { payload } = await jwtVerify(token, jwks, { issuer: ISSUER, audience: 'https://vault.example/v1/auth/jwt' });
    expect(payload).toMatchObject({ sub: VM.id, azp: VM.id, iss: ISSUER });
    expect(payload.exp! - payload.iat!).toBe(3600);
    expect(payload.uncloud).toBeUndefined();
    await expect(jwtVerify(token, jwks, { issuer: ISSUER, audience: 'other' })).rejects.toThrow(/aud/);
  });

  it('format=full carries the VM, and an expired token is refused', async () => {
    const old = Math.floor(Date.now() / 1000) - 7200;
    const token = await id.token(VM, 1, 'aud', true, old);
    const jwks = createLocalJWKSet(JSON.parse(JSON.stringify(id.jwks())));
    await expect(jwtVerify(token, jwks, { audience: 'aud' })).rejects.toThrow(/exp/);
    const fresh = await id.token(VM, 1, 'aud', true);
    const { payload } = await jwtVerify(fresh, jwks, { audience: 'aud' });
    expect(payload.uncloud).toEqual({ vm: { id: VM.id, name: 'web1', network: 'lab', owner: 'alice', host: 'hv1', created_at: VM.createdAt } });
    await expect(id.verify(fresh, 'aud')).resolves.toMatchObject({ sub: VM.id });
    await expect(id.verify(fresh, 'nope')).rejects.toThrow();
  });

  it('ES256 and EdDSA are selectable', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const other = (await InstanceIdentity.load({ ...base, alg }))!;
      const token = await other.token(VM, 1, 'aud', false);
      expect(decodeProtectedHeader(token).alg).toBe(alg);
      await expect(other.verify(token, 'aud')).resolves.toMatchObject({ sub: VM.id });
    }
  });
});

describe('signing budget', () => {
  // A guest choosing a new audience for every request would otherwise cost one signature each
  // (measured on the built binary: ~5x the CPU per request of a cached token, without bound).
  it('a VM asking for ever new audiences is refused past its burst; cached tokens and other VMs are not', async () => {
    const id = (await InstanceIdentity.load({ ...base, alg: 'ES256' }))!;
    const now = Math.floor(Date.now() / 1000);
    const signed: string[] = [];
    for (let i = 0; i < SIGNING_BURST; i++) signed.push(await id.token(VM, 1, `aud-${i}`, false, now));
    await expect(id.token(VM, 1, 'aud-new', false, now)).rejects.toBeInstanceOf(SigningRateLimited);
    // Re-asking an audience already signed costs nothing and still answers.
    expect(await id.token(VM, 1, 'aud-0', false, now)).toBe(signed[0]);
    // Another VM has its own budget.
    const other = { ...VM, id: '0d0f0a0b-1c2d-4e3f-8a9b-0c1d2e3f4a5b', name: 'web2' };
    await expect(id.token(other, 1, 'aud-new', false, now)).resolves.toMatch(/^ey/);
    // The budget refills with time.
    await expect(id.token(VM, 1, 'aud-new', false, now + 60)).resolves.toMatch(/^ey/);
  });
});

describe('EC2 identity documents', () => {
  let id: InstanceIdentity;
  const doc = `${JSON.stringify({ instanceId: 'i-8a6e08042bd04672b', region: 'lab', accountId: '123456789012' }, null, 2)}\n`;
  beforeAll(async () => { id = (await InstanceIdentity.load({ ...base, alg: 'RS256' }))!; });

  it('pkcs7 verifies with openssl smime against the deployment certificate, as AWS documents', async () => {
    const { pkcs7, signature } = (await id.ec2(doc))!;
    expect(pkcs7).toMatch(/^[A-Za-z0-9+/=\n]+$/); // base64 lines, no PEM armour, as AWS serves it
    const certFile = join(dir, 'cert.pem');
    writeFileSync(certFile, id.certificate!.pem);
    const docFile = join(dir, 'document');
    writeFileSync(docFile, doc);
    const sigFile = join(dir, 'pkcs7');
    writeFileSync(sigFile, `-----BEGIN PKCS7-----\n${pkcs7}\n-----END PKCS7-----\n`);
    const ok = openssl(['smime', '-verify', '-in', sigFile, '-inform', 'PEM', '-content', docFile, '-certfile', certFile, '-noverify']);
    expect(ok.stderr).toMatch(/Verification successful/);
    expect(ok.status).toBe(0);
    // With the chain checked too, the deployment certificate as the trust anchor.
    const cms = openssl(['cms', '-verify', '-in', sigFile, '-inform', 'PEM', '-content', docFile, '-certfile', certFile, '-CAfile', certFile, '-purpose', 'any', '-binary', '-out', '/dev/null']);
    expect(cms.stderr).toMatch(/Verification successful/);
    // A changed document fails; another key's certificate fails.
    writeFileSync(join(dir, 'forged'), doc.replace('123456789012', '999999999999'));
    expect(openssl(['smime', '-verify', '-in', sigFile, '-inform', 'PEM', '-content', join(dir, 'forged'), '-certfile', certFile, '-noverify']).status).not.toBe(0);
    const stranger = (await InstanceIdentity.load({ ...base, keyFile: (() => { const f = join(dir, 'other.pem'); writeFileSync(f, pemOf(rsaOld)); return f; })(), alg: 'RS256' }))!;
    writeFileSync(join(dir, 'other-cert.pem'), stranger.certificate!.pem);
    expect(openssl(['smime', '-verify', '-in', sigFile, '-inform', 'PEM', '-content', docFile, '-certfile', join(dir, 'other-cert.pem'), '-noverify']).status).not.toBe(0);
    // /signature: plain RSA-SHA256 over the document.
    writeFileSync(join(dir, 'sig.bin'), Buffer.from(signature, 'base64'));
    const pub = execFileSync('openssl', ['x509', '-in', certFile, '-pubkey', '-noout'], { encoding: 'utf8' });
    writeFileSync(join(dir, 'pub.pem'), pub);
    expect(openssl(['dgst', '-sha256', '-verify', join(dir, 'pub.pem'), '-signature', join(dir, 'sig.bin'), docFile]).stdout).toMatch(/Verified OK/);
  });

  it('replicas sharing the key file publish the same certificate and sign to the same bytes', async () => {
    const a = (await InstanceIdentity.load({ ...base, alg: 'RS256' }))!;
    const b = (await InstanceIdentity.load({ ...base, alg: 'RS256' }))!;
    expect(a.certificate!.pem).toBe(b.certificate!.pem);
    expect(await a.ec2(doc)).toEqual(await b.ec2(doc));
    const text = execFileSync('openssl', ['x509', '-noout', '-subject', '-enddate'], { input: a.certificate!.pem, encoding: 'utf8' });
    expect(text).toMatch(/uncloud-metadata instance identity/);
  });
});

describe('key files that cannot be used', () => {
  const load = (text: string | undefined, extra: object = {}) => {
    const f = join(dir, `bad-${Math.random()}.pem`);
    if (text !== undefined) writeFileSync(f, text);
    return InstanceIdentity.load({ ...base, keyFile: f, alg: 'RS256', ...extra });
  };
  it('each is one clear line', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    await expect(load(pemOf(weak))).rejects.toThrow(/key 1 is an RSA key of 1024 bits/);
    await expect(load('not a key')).rejects.toThrow(/no private key in the file/);
    await expect(load('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')).rejects.toThrow(/key 1 does not parse/);
    await expect(load(undefined)).rejects.toThrow(/cannot read identity key file .*ENOENT/);
    await expect(load(pemOf(ec), { alg: 'RS256' })).rejects.toThrow(/no RS256 key/);
    await expect(InstanceIdentity.load({ keyFile, alg: 'RS256', accountId: '1' })).rejects.toThrow(/identity.issuer is required/);
    await expect(load(pemOf(ec))).rejects.toBeInstanceOf(IdentityKeyError);
    expect(await InstanceIdentity.load({ alg: 'RS256', accountId: '1' })).toBeUndefined();
  });
  it('an operator certificate must be for the newest RSA key', async () => {
    const other = (await InstanceIdentity.load({ ...base, keyFile: join(dir, 'other.pem'), alg: 'RS256' }))!;
    const f = join(dir, 'wrong-cert.pem');
    writeFileSync(f, other.certificate!.pem);
    await expect(InstanceIdentity.load({ ...base, certFile: f, alg: 'RS256' })).rejects.toThrow(/not for the newest RSA key/);
  });
});
