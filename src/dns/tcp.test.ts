// DNS over TCP under abuse (RFC 7766): one host holding hundreds of idle connections, empty or
// garbage frames meant to keep a connection alive, pipelined queries in one write, a client that
// does not read. The legitimate client is the real `dig +tcp`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig } from './testing/dig.js';
import { buildQuery, encodeName } from './wire.js';

const t = etcdTestStore();
let server: DnsServer;
let small: DnsServer;
let port: number;
let smallPort: number;
const IDLE_MS = 1500;

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1' });
  const { registry } = await t.follow();
  port = await freePort();
  smallPort = await freePort();
  server = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port }], log: silentLogger() });
  small = await startDnsServer({
    registry, listen: [{ host: '127.0.0.1', port: smallPort }], log: silentLogger(),
    tcpLimits: { idleMs: IDLE_MS, maxConnections: 40, maxPerClient: 8 },
  });
});
afterAll(async () => {
  await server?.close();
  await small?.close();
  await t.close();
});

function open(p: number, localAddress = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: p, localAddress }, () => resolve(s));
    s.once('error', reject);
  });
}
function closed(s: Socket): Promise<number> {
  const start = Date.now();
  return new Promise((resolve) => (s.destroyed ? resolve(0) : s.once('close', () => resolve(Date.now() - start))));
}
function frame(msg: Buffer): Buffer {
  const f = Buffer.alloc(2 + msg.length);
  f.writeUInt16BE(msg.length, 0);
  msg.copy(f, 2);
  return f;
}
/** Reads framed answers from `s` until `n` have arrived; resolves with their IDs. */
function answers(s: Socket, n: number, ms = 30_000): Promise<number[]> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const ids: number[] = [];
    const timer = setTimeout(() => reject(new Error(`${ids.length} of ${n} answers`)), ms);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        ids.push(buf.readUInt16BE(2));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (ids.length >= n) {
        clearTimeout(timer);
        s.off('data', onData);
        resolve(ids);
      }
    };
    s.on('data', onData);
    s.once('close', () => reject(new Error(`closed after ${ids.length} of ${n} answers`)));
  });
}
const query = (id: number) => buildQuery(id, encodeName('metadata.lab.example'), 28, 1);

describe('TCP connections one host cannot exhaust', () => {
  it('dig +tcp answers while one host holds 600 idle connections (more than the old global cap of 512)', async () => {
    const held: Socket[] = [];
    for (let i = 0; i < 600; i++) held.push(await open(port).catch(() => undefined as unknown as Socket));
    await new Promise((r) => setTimeout(r, 200));
    const alive = held.filter((s) => s && !s.destroyed).length;
    // The host keeps a bounded share; the rest were closed at once.
    expect(alive).toBeLessThanOrEqual(32);
    const r = await dig('127.0.0.1', port, ['-b', '127.0.0.2', '+tcp', 'metadata.lab.example', 'AAAA']);
    expect(r.status).toBe('NOERROR');
    expect(r.answer.map((a) => a.data)).toEqual(['2001:db8:1::1']);
    expect(r.raw).toMatch(/\(TCP\)/);
    // And from the flooding host itself: its own idle connections make room.
    const same = await dig('127.0.0.1', port, ['+tcp', 'metadata.lab.example', 'AAAA']);
    expect(same.answer.map((a) => a.data)).toEqual(['2001:db8:1::1']);
    expect(held.filter((s) => s && !s.destroyed).length).toBeLessThanOrEqual(32);
    for (const s of held) s?.destroy();
  }, 60_000);

  it('when the total is reached by many hosts, the longest-idle connection makes room for a new client', async () => {
    const held: Socket[] = [];
    for (let h = 10; h < 16; h++) for (let i = 0; i < 8; i++) held.push(await open(smallPort, `127.0.1.${h}`).catch(() => undefined as unknown as Socket));
    const r = await dig('127.0.0.1', smallPort, ['-b', '127.0.0.3', '+tcp', 'metadata.lab.example', 'AAAA']);
    expect(r.status).toBe('NOERROR');
    expect(held.filter((s) => s && !s.destroyed).length).toBeLessThanOrEqual(40);
    for (const s of held) s?.destroy();
  }, 60_000);
});

describe('the idle timer counts only answered queries', () => {
  it('empty frames and garbage do not keep a connection open; real queries do', async () => {
    const [empty, garbage, busy] = await Promise.all([open(smallPort, '127.0.2.1'), open(smallPort, '127.0.2.2'), open(smallPort, '127.0.2.3')]);
    busy.on('data', () => undefined);
    garbage.on('data', () => undefined);
    const tick = setInterval(() => {
      if (!empty.destroyed) empty.write(Buffer.from([0, 0]));
      if (!garbage.destroyed) garbage.write(frame(Buffer.from([1, 2, 3, 4, 5])));
      if (!busy.destroyed) busy.write(frame(query(7)));
    }, 250);
    const [emptyAfter, garbageAfter] = await Promise.all([closed(empty), closed(garbage)]);
    clearInterval(tick);
    expect(emptyAfter).toBeLessThan(IDLE_MS * 4);
    expect(garbageAfter).toBeLessThan(IDLE_MS * 4);
    // The one asking real questions outlived both.
    expect(busy.destroyed).toBe(false);
    busy.destroy();
  }, 30_000);
});

describe('pipelined queries', () => {
  for (const n of [65, 1000]) {
    it(`${n} queries in one write are all answered, none lost`, async () => {
      const s = await open(port, '127.0.3.1');
      const got = answers(s, n);
      s.write(Buffer.concat(Array.from({ length: n }, (_, i) => frame(query(i + 1)))));
      const ids = await got;
      expect(new Set(ids).size).toBe(n);
      expect(Math.min(...ids)).toBe(1);
      expect(Math.max(...ids)).toBe(n);
      s.destroy();
    }, 60_000);
  }

  it('a client that does not read its answers is slowed, not dropped, and gets every answer once it reads', async () => {
    const s = await open(port, '127.0.3.2');
    s.pause();
    const n = 20_000;
    s.write(Buffer.concat(Array.from({ length: n }, (_, i) => frame(query((i % 65535) + 1)))));
    await new Promise((r) => setTimeout(r, 1000));
    expect(s.destroyed).toBe(false);
    const got = answers(s, n, 60_000);
    s.resume();
    expect((await got).length).toBe(n);
    s.destroy();
  }, 90_000);
});
