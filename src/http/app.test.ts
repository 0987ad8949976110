// The app without sockets (Hono's app.request) over an in-memory registry: identity comes from
// the socket address only, caches follow registry changes, GCE JSON shape, target checks.
import { describe, expect, it } from 'vitest';
import { Registry } from '../registry/registry.js';
import { Keys } from '../store/keys.js';
import { silentLogger } from '../log.js';
import { createMetadataApp } from './app.js';
import { checkTarget } from './guards.js';
import { squeezeSlashes } from './server.js';
import { ED25519 } from '../../test/support/store.js';

const keys = new Keys();
const rec = (key: string, value: object, mod = 1) => ({ key, value: JSON.stringify(value), modRevision: mod, createRevision: 1 });
const NET = { v: 1, name: 'n', prefix6: 'fd00:1::/64', domain: 'n.test', metadata6: 'fd00:1::1', upstreams: [] };
const vmRec = (userData: string, mod: number) => rec(keys.vm('n', 'a'), {
  v: 1, id: '6f1d3c7e-2b4a-4e8f-9a1b-3c5d7e9f1a2b', name: 'a', network: 'n', mac: '52:54:00:00:00:0a', addresses: ['fd00:1::a'],
  userData, sshKeys: [ED25519], meta: { 'x-y': 'z' }, createdAt: '2026-01-01T00:00:00Z',
}, mod);

function setup() {
  const registry = new Registry({ log: silentLogger() });
  registry.reset([rec(keys.network('n'), NET), vmRec('one', 1)], 1);
  const m = createMetadataApp({ registry, tokenSecret: Buffer.from('k'), log: silentLogger() });
  const from = (remoteAddress?: string) => ({ incoming: { socket: { remoteAddress } } }) as never;
  return { registry, ...m, from };
}

describe('metadata app', () => {
  it('identifies by the socket address only: headers claiming an address change nothing', async () => {
    const { app, from } = setup();
    expect((await app.request('/keys', {}, from('fd00:1::a'))).status).toBe(200);
    expect((await app.request('/keys', {}, from('fd00:1:0:0:5054:ff:fe00:a'))).status).toBe(200);
    // Proxy headers are refused outright; any other header naming an address changes nothing.
    for (const h of ['X-Real-IP', 'X-Client-IP', 'True-Client-IP', 'CF-Connecting-IP', 'Via', 'X-Forwarded-Host']) {
      expect((await app.request('/keys', { headers: { [h]: 'fd00:1::a' } }, from('fd00:1::a'))).status, h).toBe(403);
    }
    expect((await app.request('/keys', { headers: { 'X-Claimed-Address': 'fd00:1::a' } }, from('fd00:1::b'))).status).toBe(404);
    expect((await app.request('/keys', {}, from(undefined))).status).toBe(404);
    expect((await app.request('/keys', { headers: { 'X-Forwarded-For': 'x' } }, from('fd00:1::a'))).status).toBe(403);
  });

  it('re-renders after a registry change and keeps the cache when nothing changed', async () => {
    const { app, registry, cache, from } = setup();
    const get = async () => (await app.request('/nocloud/user-data', {}, from('fd00:1::a'))).text();
    expect(await get()).toBe('one');
    expect(cache.size).toBe(1);
    registry.apply([{ ...vmRec('two', 2) }], 2);
    expect(cache.size).toBe(0);
    expect(await get()).toBe('two');
  });

  it('shapes GCE recursive JSON with camelCase keys but attribute names kept', async () => {
    const { app, from } = setup();
    const r = await app.request('/computeMetadata/v1/?recursive=true', { headers: { 'Metadata-Flavor': 'Google' } }, from('fd00:1::a'));
    const doc = await r.json() as any;
    expect(r.headers.get('metadata-flavor')).toBe('Google');
    expect(doc.instance.machineType).toMatch(/^projects\/0\/machineTypes\//);
    expect(doc.instance.networkInterfaces[0].ipv6s).toEqual(['fd00:1::5054:ff:fe00:a', 'fd00:1::a']);
    expect(doc.instance.attributes['x-y']).toBe('z');
    expect(doc.project.numericProjectId).toBe(0);
  });

  it('never answers 5xx to odd methods and paths', async () => {
    const { app, from } = setup();
    for (const [method, path] of [['GET', '/nope'], ['POST', '/keys'], ['PROPFIND', '/'], ['GET', '/latest/meta-data/../../x'], ['PUT', '/latest/api/token']]) {
      const r = await app.request(path, { method }, from('fd00:1::a'));
      expect(r.status, `${method} ${path}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${path}`).toBeLessThan(500);
    }
  });
});

describe('target checks', () => {
  it('accepts plain paths and refuses dot segments, percent escapes, NUL, empty segments and oversize', () => {
    for (const ok of ['/', '/keys', '/openstack/latest/meta_data.json', '/latest/meta-data/network/interfaces/macs/52:54:00:00:00:0a/ipv6s', '/computeMetadata/v1/?recursive=true&alt=json']) {
      expect(checkTarget(ok), ok).not.toBeInstanceOf(Response);
    }
    for (const bad of ['', 'keys', 'http://x/keys', '/a/../b', '/a/./b', '/..', '/.', '/a/..', '/%2e%2e/x', '/a%00', '/a\0b', '//a', '/a//b', '/a b', '/a\\b', '/x?y=%00', `/${'a'.repeat(3000)}`]) {
      const r = checkTarget(bad);
      expect(r, JSON.stringify(bad)).toBeInstanceOf(Response);
      expect((r as Response).status).toBeGreaterThanOrEqual(400);
      expect((r as Response).status).toBeLessThan(500);
    }
  });

  it('squeezes only the path part', () => {
    expect(squeezeSlashes('//latest//meta-data/?a=//b')).toBe('/latest/meta-data/?a=//b');
  });
});
