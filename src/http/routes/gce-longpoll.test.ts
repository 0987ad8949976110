// A GCE long-poll is answered for the VM that asked, never for whatever holds its name later: the
// record under the name replaced by another VM (new id, other address) in one registry change, as
// a full reload delivers it, must end the wait with 404 and nothing of the newcomer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../../test/support/store.js';
import { silentLogger } from '../../log.js';
import { Registry } from '../../registry/registry.js';
import { startHttpServer, type HttpServer } from '../server.js';
import { httpGet } from '../testing/clients.js';

describe('long-poll across a VM replaced under its name', () => {
  const t = etcdTestStore();
  const registry = new Registry({ prefix: t.prefix, log: silentLogger() });
  let server: HttpServer;
  const reload = async () => {
    const { entries, revision } = await t.store.kv.range(`${t.prefix}/`);
    registry.reset(entries, revision);
  };

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'lp', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'lp.test', metadata6: '::53' });
    await t.writer.addVm({ name: 'attacker', network: 'lp', addresses: ['::1'] });
    await reload();
    server = await startHttpServer({ registry, tokenSecret: Buffer.from('s'), log: silentLogger(), listen: [{ host: '::1', port: 0 }] });
  });
  afterAll(async () => {
    await server?.close();
    await t.close();
  });

  it('ends the wait with 404, not the newcomer\'s document', async () => {
    const port = server.addresses[0].port;
    const g = { 'Metadata-Flavor': 'Google' };
    const now = await httpGet('::1', port, '/computeMetadata/v1/instance/?recursive=true', { headers: g });
    expect(now.status).toBe(200);
    const waiting = httpGet('::1', port, `/computeMetadata/v1/instance/?recursive=true&wait_for_change=true&last_etag=${now.headers.etag}&timeout_sec=20`, { headers: g });
    await new Promise((r) => setTimeout(r, 300));
    await t.writer.removeVm('attacker', 'lp');
    await t.writer.addVm({ name: 'attacker', network: 'lp', addresses: ['127.0.0.9'], meta: { secret: 'other-tenant-secret' } });
    await reload(); // one change naming every VM: the name now holds another VM
    const r = await waiting;
    expect(r.status).toBe(404);
    expect(r.body).not.toContain('other-tenant-secret');
    // And a fresh request from ::1 is nobody now.
    expect((await httpGet('::1', port, '/computeMetadata/v1/instance/?recursive=true', { headers: g })).status).toBe(404);
  });
});
