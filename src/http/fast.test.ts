// The node:http fast path must answer exactly what the Hono app answers: two servers on the
// same live registry, one with it and one without, compared request by request over HTTP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, ED25519 } from '../../test/support/store.js';
import { silentLogger } from '../log.js';
import { startHttpServer, type HttpServer } from './server.js';
import { curl, httpGet } from './testing/clients.js';

const t = etcdTestStore();
let fast: HttpServer;
let slow: HttpServer;
let close: () => Promise<void>;

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'fp', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'fp.test', metadata6: '::53', metadata4: '127.0.0.53' });
  await t.writer.addUserKey('carol', 'k', ED25519);
  await t.writer.addVm({ name: 'one', network: 'fp', owner: 'carol', mac: '52:54:00:dd:00:01', addresses: ['::1', '127.0.0.1'], userData: 'ud', meta: { a: 'b' } });
  await t.writer.addVm({ name: 'two', network: 'fp', mac: '52:54:00:dd:00:02', addresses: ['127.0.0.2'], requireToken: true });
  const f = await t.follow();
  close = f.close;
  const common = { registry: f.registry, tokenSecret: Buffer.from('same'), log: silentLogger() };
  fast = await startHttpServer({ ...common, listen: [{ host: '127.0.0.1', port: 0 }] });
  slow = await startHttpServer({ ...common, listen: [{ host: '127.0.0.1', port: 0 }], fastPath: false });
});
afterAll(async () => {
  await fast?.close();
  await slow?.close();
  await close?.();
  await t.close();
});

const PATHS = [
  '/', '/instance', '/keys', '/keys/', '/instance/x', '/openstack', '/openstack/', '/openstack/latest', '/openstack/2013-04-04/meta_data.json',
  '/openstack/latest/user_data', '/openstack/latest/network_data.json', '/openstack/latest/nope', '/nocloud/', '/nocloud/meta-data',
  '/nocloud/network-config', '/latest', '/latest/', '/latest/meta-data/', '/latest/meta-data/public-keys/', '/latest/meta-data/public-keys/0/openssh-key',
  '/2009-04-04/meta-data/instance-id', '/1.0/user-data', '/latest/api/token', '/latest/dynamic/instance-identity/document', '/keys?x=1',
  '/openstack/../keys', '/nocloud/%2e%2e/x', '//keys', '/computeMetadata/v1/', '/2019-10-01/user-data', '/2021-01-03/meta-data/hostname',
  '/2021-01-03/meta-data/public-keys/0/openssh-key', '/2019-13-01/user-data', '/2019-10-01', '/2019-10-01/',
];
/** Headers every guard judges: Host forms, proxy headers, the flavour and token headers. */
const HEADER_SETS: Record<string, string>[] = [
  {}, { Host: 'attacker.example' }, { Host: '[fe80::1%25eth0]:80' }, { Host: '[fe80::1%eth0]' }, { Host: 'metadata.fp.test' },
  { Host: 'metadata.other.test' }, { Via: '1.1 p' }, { 'X-Forwarded-Proto': 'http' }, { 'Metadata-Flavor': 'Google' },
];
const GCE_PATHS = [
  '/computeMetadata', '/computeMetadata/', '/computeMetadata/v1', '/computeMetadata/v1/', '/computeMetadata/v1/instance/hostname',
  '/computeMetadata/v1/instance/?recursive=true', '/computeMetadata/v1/instance/?recursive=True', '/computeMetadata/v1/?recursive=true&alt=text',
  '/computeMetadata/v1/instance/name?alt=json', '/computeMetadata/v1/instance/name?alt=xml', '/computeMetadata/v1/instance/attributes/a',
  '/computeMetadata/v1/instance/nope', '/computeMetadata/v1beta1/instance', '/computeMetadata/v1/instance/network-interfaces/0/mac?recursive=false',
  '/computeMetadata/v1/project/?recursive=true&x=1',
];

describe('fast path', () => {
  it('answers every path like the Hono app: status, body, type and ETag', async () => {
    const cases = [
      ...PATHS.flatMap((p) => HEADER_SETS.map((h) => [p, h] as const)),
      ...GCE_PATHS.flatMap((p) => HEADER_SETS.flatMap((h) => [[p, { ...h, 'Metadata-Flavor': 'Google' }], [p, h]] as const)),
    ];
    for (const from of ['127.0.0.1', '127.0.0.2', '127.0.0.9']) {
      for (const [p, headers] of cases) {
        const [a, b] = await Promise.all([
          httpGet('127.0.0.1', fast.addresses[0].port, p, { from, headers }),
          httpGet('127.0.0.1', slow.addresses[0].port, p, { from, headers }),
        ]);
        const what = `${from} ${p} ${JSON.stringify(headers)}`;
        expect(a.status, what).toBe(b.status);
        expect(a.body, what).toBe(b.body);
        expect(a.headers['content-type'], what).toBe(b.headers['content-type']);
        expect(a.headers.etag, what).toBe(b.headers.etag);
        expect(a.headers['metadata-flavor'], what).toBe(b.headers['metadata-flavor']);
        expect(a.headers['content-length'] ?? String(Buffer.byteLength(a.body)), what).toBe(String(Buffer.byteLength(a.body)));
        expect(a.headers['transfer-encoding'], what).toBeUndefined();
      }
    }
  });

  it('leaves guarded requests to the app: forwarded, tokens, other methods', async () => {
    const url = `http://127.0.0.1:${fast.addresses[0].port}`;
    expect((await curl(`${url}/keys`, { headers: { 'x-FORWARDED-for': '1.2.3.4' } })).status).toBe(403);
    expect((await curl(`${url}/keys`, { headers: { Forwarded: 'for=x' } })).status).toBe(403);
    expect((await curl(`${url}/latest/meta-data/instance-id`, { headers: { 'X-aws-ec2-metadata-token': 'bad' } })).status).toBe(401);
    expect((await curl(`${url}/latest/meta-data/instance-id`, { from: '127.0.0.2' })).status).toBe(401);
    expect((await curl(`${url}/keys`, { method: 'POST' })).status).toBe(405);
  });
});
