// UDP answer sizes for our own names, side by side with Knot serving the same records: a VM with
// many addresses never gets a UDP answer larger than min(client's EDNS size, 1232), 512 without
// EDNS (DNS flag day 2020; Knot's default is the same 1232), TC set, the whole set over TCP.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { silentLogger } from '../log.js';
import { startDnsServer, type DnsServer } from './server.js';
import { dig, type DigResult } from './testing/dig.js';
import { knotZoneHead, startKnot, type Knot } from './testing/knot.js';

const t = etcdTestStore();
let server: DnsServer;
let knot: Knot;
let port: number;
// 60 AAAA records: ~1.7 KB of answer.
const MANY = Array.from({ length: 60 }, (_, i) => `2001:db8:1::c:${(i + 1).toString(16)}`);
const msgSize = (r: DigResult) => Number(/MSG SIZE\s+rcvd: (\d+)/.exec(r.raw)?.[1]);

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1' });
  await t.writer.addVm({ name: 'many', network: 'lab', mac: '52:54:00:00:00:0c', addresses: MANY });
  const { registry } = await t.follow();
  port = await freePort();
  server = await startDnsServer({ registry, listen: [{ host: '127.0.0.1', port }], log: silentLogger() });
  // The same set in Knot: the explicit addresses and the EUI-64 one from the MAC.
  const zone = [knotZoneHead('lab.example', 'lab.example'), ...[...MANY, '2001:db8:1:0:5054:ff:fe00:c'].map((a) => `many AAAA ${a}`)].join('\n');
  knot = await startKnot({ port: await freePort(), zones: { 'lab.example': zone } });
});
afterAll(async () => {
  await server?.close();
  await knot?.close();
  await t.close();
});

describe('UDP answer sizes for our own names', () => {
  it('a VM with many addresses: TC within min(client size, 1232) over UDP, as Knot; all of them over TCP', async () => {
    for (const args of [['+bufsize=4096'], ['+bufsize=1232'], ['+bufsize=800'], ['+noedns']]) {
      const limit = args[0] === '+noedns' ? 512 : Math.min(Number(args[0].split('=')[1]), 1232);
      for (const p of [port, knot.port]) {
        const r = await dig('127.0.0.1', p, [...args, '+norec', '+ignore', 'many.lab.example', 'AAAA']);
        expect(r.flags, `${args} @${p === port ? 'ours' : 'knot'}`).toContain('tc');
        expect(msgSize(r)).toBeLessThanOrEqual(limit);
      }
    }
    const ours = await dig('127.0.0.1', port, ['+tcp', 'many.lab.example', 'AAAA']);
    const theirs = await dig('127.0.0.1', knot.port, ['+tcp', '+norec', 'many.lab.example', 'AAAA']);
    expect(ours.answer.map((a) => a.data).sort()).toEqual(theirs.answer.map((a) => a.data).sort());
    expect(ours.answer).toHaveLength(MANY.length + 1); // + its EUI-64 address
  });
});
