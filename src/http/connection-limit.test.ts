// One client holding many idle connections reaches its bound and no further; another VM is served
// meanwhile, and the first is served again once it lets go.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { etcdTestStore } from '../../test/support/store.js';
import { silentLogger } from '../log.js';
import { startHttpServer, type HttpServer } from './server.js';
import { httpGet } from './testing/clients.js';

describe('connections per client address', () => {
  const t = etcdTestStore();
  let server: HttpServer;
  let close: () => Promise<void>;
  let port6 = 0;
  let port4 = 0;

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'cl', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'cl.test', metadata6: '::53' });
    await t.writer.addVm({ name: 'greedy', network: 'cl', addresses: ['::1'] });
    await t.writer.addVm({ name: 'victim', network: 'cl', addresses: ['127.0.0.1'] });
    const f = await t.follow();
    close = f.close;
    server = await startHttpServer({
      registry: f.registry, tokenSecret: Buffer.from('s'), log: silentLogger(),
      listen: [{ host: '::1', port: 0 }, { host: '127.0.0.1', port: 0 }], limits: { maxConnectionsPerAddress: 10 },
    });
    [port6, port4] = server.addresses.map((a) => a.port);
  });
  afterAll(async () => {
    await server?.close();
    await close?.();
    await t.close();
  });

  it('closes a client\'s connections past its bound, serves the others, and the client again once it lets go', async () => {
    const held: Socket[] = [];
    let closedByServer = 0;
    for (let i = 0; i < 30; i++) {
      const s = connect({ host: '::1', port: port6 });
      s.on('close', () => closedByServer++);
      s.on('error', () => undefined);
      held.push(s);
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(closedByServer).toBe(20);
    expect((await httpGet('127.0.0.1', port4, '/instance')).status).toBe(200);
    await expect(httpGet('::1', port6, '/instance')).rejects.toThrow(/ECONNRESET|socket hang up/);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 300));
    expect((await httpGet('::1', port6, '/instance')).status).toBe(200);
  });
});
