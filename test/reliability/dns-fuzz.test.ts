// A hostile guest against the built daemon's DNS: a million packets (random bytes, mutated and
// truncated queries, valid queries for random names) from a bounded loop on loopback. Every few
// thousand packets a real query must still be answered (which also paces the loop: the socket
// is FIFO, so its answer means the daemon got through what came before). Zero crashes, memory
// bounded, and garbage sent over TCP too.
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../support/store.js';
import { figure, httpGet, startDaemon, type Daemon } from './support.js';

const PACKETS = Number(process.env.DNS_FUZZ_PACKETS ?? 1_000_000);
const SEED = Number(process.env.DNS_FUZZ_SEED ?? 0x5eed);
const BATCH = 2000;

/** xorshift32: a reproducible stream of bytes for a seed. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x;
  };
}

function query(id: number, name: string, qtype: number, edns = false): Buffer {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, edns ? 1 : 0]);
  const tail = Buffer.from([0, qtype >> 8, qtype & 255, 0, 1]);
  const opt = edns ? Buffer.from([0, 0, 41, 16, 0, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  return Buffer.concat([head, ...labels, tail, opt]);
}

const NAMES = ['metadata', 'metadata.fuzz.test', 'vm1.fuzz.test', 'fuzz.test', 'example.com', '2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa'];
const TYPES = [1, 28, 12, 6, 2, 255, 252, 16, 33, 65];

describe('DNS under a million hostile packets', () => {
  const t = etcdTestStore();
  let d: Daemon;

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'fuzz', prefix6: '::/64', domain: 'fuzz.test', metadata6: '::2' });
    await t.writer.addVm({ name: 'vm1', network: 'fuzz', addresses: ['::1'] });
    d = await startDaemon(t.url, t.prefix, ['--log-level', 'info']);
  });
  afterAll(async () => {
    await d?.run.stop('SIGKILL');
    await t.close();
  });

  it(`${PACKETS} random, mutated and truncated packets: no crash, real queries answered throughout, memory bounded`, async () => {
    const rand = prng(SEED);
    const sock = createSocket('udp6');
    await new Promise<void>((r) => sock.bind(0, '::1', () => r()));
    let replies = 0;
    // The flood's ids are random, so a reply to a flood packet can carry the probe's id (the
    // seed's stream has 5 such packets in the batch before their probe): the probe's answer is
    // the reply with its id and its question, not merely its id.
    let idCollisions = 0;
    let waiting: { id: number; question: Buffer; resolve: (b: Buffer) => void } | undefined;
    sock.on('message', (msg) => {
      replies++;
      if (waiting && msg.length >= 12 && msg.readUInt16BE(0) === waiting.id && (msg[2] & 0x80)) {
        if (!msg.subarray(12, 12 + waiting.question.length).equals(waiting.question)) {
          idCollisions++;
          return;
        }
        const w = waiting;
        waiting = undefined;
        w.resolve(msg);
      }
    });
    const send = (b: Buffer) => new Promise<void>((r) => sock.send(b, d.dnsPort, '::1', () => r()));
    /** A real AAAA for vm1: must come back NOERROR with answers. */
    const probe = async (id: number): Promise<Buffer | undefined> => {
      const q = query(id, 'vm1.fuzz.test', 28);
      for (let attempt = 0; attempt < 3; attempt++) {
        const answer = new Promise<Buffer | undefined>((resolve) => {
          waiting = { id, question: q.subarray(12), resolve };
          setTimeout(() => resolve(undefined), 2000);
        });
        await send(q);
        const a = await answer;
        if (a) return a;
      }
      return undefined;
    };

    // Warm-up, then the baseline.
    for (let i = 0; i < 2000; i++) await send(query(i, NAMES[i % NAMES.length], TYPES[i % TYPES.length], i % 2 === 0));
    expect(await probe(0xfffe)).toBeDefined();
    const rssBefore = d.rssKiB();
    const rssSamples: number[] = [];
    const kinds = { random: 0, mutated: 0, truncated: 0, randomName: 0 };
    let probesAnswered = 0;
    let probesLost = 0;
    const t0 = Date.now();

    for (let sent = 0; sent < PACKETS;) {
      for (let i = 0; i < BATCH && sent < PACKETS; i++, sent++) {
        const r = rand();
        let pkt: Buffer;
        switch (r & 3) {
          case 0: { // random bytes, 0..600 long
            pkt = Buffer.alloc((r >>> 2) % 601);
            for (let j = 0; j < pkt.length; j++) pkt[j] = (j & 3) === 0 ? rand() & 255 : pkt[j - 1] ^ (j * 131);
            kinds.random++;
            break;
          }
          case 1: { // a valid query with 1..6 bytes flipped (header counts, labels, pointers...)
            pkt = query(r >>> 16, NAMES[(r >>> 2) % NAMES.length], TYPES[(r >>> 5) % TYPES.length], (r & 4) !== 0);
            for (let f = 1 + ((r >>> 9) % 6); f > 0; f--) pkt[rand() % pkt.length] = rand() & 255;
            kinds.mutated++;
            break;
          }
          case 2: { // a valid query cut short
            const full = query(r >>> 16, NAMES[(r >>> 2) % NAMES.length], TYPES[(r >>> 5) % TYPES.length], (r & 4) !== 0);
            pkt = full.subarray(0, (r >>> 8) % full.length);
            kinds.truncated++;
            break;
          }
          default: { // a well-formed query for a name nobody has (fills caches if they were unbounded)
            const label = (rand().toString(36) + rand().toString(36)).slice(0, 12);
            pkt = query(r >>> 16, `${label}.${(r & 4) ? 'fuzz.test' : 'example.net'}`, TYPES[(r >>> 5) % TYPES.length], (r & 8) !== 0);
            kinds.randomName++;
          }
        }
        sock.send(pkt, d.dnsPort, '::1');
      }
      const a = await probe(sent & 0xffff);
      if (a && (a[3] & 15) === 0 && a.readUInt16BE(6) >= 1) probesAnswered++;
      else probesLost++;
      if (d.run.proc.exitCode !== null) throw new Error(`daemon died after ${sent} packets: ${d.run.output().slice(-2000)}`);
      if ((sent / BATCH) % 50 === 0) rssSamples.push(d.rssKiB());
    }
    const ms = Date.now() - t0;
    const rssAfter = d.rssKiB();
    sock.close();

    // TCP: garbage length-prefixed messages and half-open connections, then a real TCP query.
    const tcpGarbage = await Promise.all(Array.from({ length: 200 }, (_, i) => new Promise<string>((resolve) => {
      const s = connect({ host: '::1', port: d.dnsPort }, () => {
        const body = Buffer.alloc(i % 300);
        for (let j = 0; j < body.length; j++) body[j] = rand() & 255;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(i % 3 === 0 ? 65535 : body.length); // some claim more than they send
        s.write(Buffer.concat([len, body]));
        if (i % 2) s.end();
      });
      s.on('error', () => resolve('error'));
      s.on('close', () => resolve('closed'));
      setTimeout(() => { s.destroy(); resolve('held'); }, 1500);
    })));
    const tcpAnswer = await new Promise<Buffer>((resolve, reject) => {
      const q = query(7, 'vm1.fuzz.test', 28);
      const len = Buffer.alloc(2);
      len.writeUInt16BE(q.length);
      let got = Buffer.alloc(0);
      const s = connect({ host: '::1', port: d.dnsPort }, () => s.write(Buffer.concat([len, q])));
      s.on('data', (b) => {
        got = Buffer.concat([got, b]);
        if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0)) { s.destroy(); resolve(got.subarray(2)); }
      });
      s.on('error', reject);
      setTimeout(() => reject(new Error('no TCP answer')), 5000);
    });
    expect(tcpAnswer[3] & 15).toBe(0);
    expect(tcpAnswer.readUInt16BE(6)).toBeGreaterThanOrEqual(1);

    // Still alive, still right, over UDP and HTTP.
    expect(d.run.proc.exitCode).toBeNull();
    expect(await d.resolver().resolve6('vm1.fuzz.test')).toContain('::1');
    expect((await httpGet(`http://[::1]:${d.httpPort}/instance`)).status).toBe(200);
    expect(d.run.output()).not.toMatch(/uncaught|unhandled|FATAL|"level":60/i);
    const grownKiB = rssAfter - rssBefore;
    figure('dns-fuzz', {
      packets: PACKETS, seed: SEED, ...kinds, replies, probesAnswered, probesLost, idCollisions, ms, packetsPerSecond: Math.round(PACKETS / (ms / 1000)),
      rssBeforeKiB: rssBefore, rssAfterKiB: rssAfter, rssMaxKiB: Math.max(...rssSamples, rssAfter), grownKiB, rssSamplesKiB: rssSamples,
      tcp: Object.fromEntries(['closed', 'error', 'held'].map((k) => [k, tcpGarbage.filter((x) => x === k).length])),
    });
    // Real queries: lost at most a handful to kernel drops under the flood, never most of them.
    expect(probesLost).toBeLessThanOrEqual(Math.ceil((probesAnswered + probesLost) * 0.01));
    // Memory: the caches are bounded; a million packets must not grow the daemon by more than 96 MiB.
    expect(grownKiB).toBeLessThan(96 * 1024);
  }, 600_000);
});
