// A scripted upstream for forwarding tests: UDP and TCP on loopback, every query recorded, and a
// script deciding per query what comes back (records, rcode, flags, a delay, silence, no OPT).
// It is how a test gets the upstreams real resolvers meet and Knot or dnsmasq will not play:
// slow, silent, truncating, oversized, EDNS-intolerant, SERVFAIL. Test-only.
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import { encodeName, parseQuery, TYPE } from '../wire.js';

export interface ScriptedQuery {
  id: number;
  flags: number;
  qname: string;
  qtype: number;
  /** Undefined: the query had no OPT. */
  ednsPayload?: number;
  dnssecOk: boolean;
  transport: 'udp' | 'tcp';
  /** Per transport and name: 1 for the first query for this name over this transport. */
  nth: number;
  at: number;
}

export interface ScriptedRr { name: string; type: number; ttl: number; rdata: Buffer }

export interface ScriptedReply {
  rcode?: number;
  /** Extra header bits (TC 0x0200, AA 0x0400, AD 0x0020); QR and RD are set for you. */
  flags?: number;
  answer?: ScriptedRr[];
  authority?: ScriptedRr[];
  additional?: ScriptedRr[];
  delayMs?: number;
  /** Leave our OPT out even if the query had one (an EDNS-intolerant server). */
  noOpt?: boolean;
}

/** undefined: stay silent. */
export type Script = (q: ScriptedQuery) => ScriptedReply | undefined;

export interface ScriptedUpstream {
  port: number;
  queries: ScriptedQuery[];
  queriesFor(qname: string, transport?: 'udp' | 'tcp'): ScriptedQuery[];
  close(): Promise<void>;
}

export const rr = {
  a: (name: string, ip: string, ttl = 60): ScriptedRr => ({ name, type: TYPE.A, ttl, rdata: Buffer.from(ip.split('.').map(Number)) }),
  ns: (name: string, target: string, ttl = 60): ScriptedRr => ({ name, type: TYPE.NS, ttl, rdata: encodeName(target) }),
  txt: (name: string, text: string, ttl = 60): ScriptedRr => ({ name, type: 16, ttl, rdata: Buffer.concat([Buffer.from([text.length]), Buffer.from(text)]) }),
  soa: (zone: string, ttl: number, minimum: number): ScriptedRr => {
    const times = Buffer.alloc(20);
    [1, 3600, 600, 86400, minimum].forEach((v, i) => times.writeUInt32BE(v >>> 0, i * 4));
    return { name: zone, type: TYPE.SOA, ttl, rdata: Buffer.concat([encodeName(`ns.${zone}`), encodeName(`hostmaster.${zone}`), times]) };
  },
};

function encodeRecord(r: ScriptedRr): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(1, 2);
  fixed.writeUInt32BE(r.ttl >>> 0, 4);
  fixed.writeUInt16BE(r.rdata.length, 8);
  return Buffer.concat([encodeName(r.name), fixed, r.rdata]);
}

function build(query: Buffer, questionEnd: number, hadOpt: boolean, reply: ScriptedReply): Buffer {
  const sections = [reply.answer ?? [], reply.authority ?? [], reply.additional ?? []];
  const opt = hadOpt && !reply.noOpt ? Buffer.from([0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]) : undefined;
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2);
  header.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x0110) | (reply.flags ?? 0) | (reply.rcode ?? 0), 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(sections[0].length, 6);
  header.writeUInt16BE(sections[1].length, 8);
  header.writeUInt16BE(sections[2].length + (opt ? 1 : 0), 10);
  return Buffer.concat([header, query.subarray(12, questionEnd), ...sections.flat().map(encodeRecord), ...(opt ? [opt] : [])]);
}

export async function startScriptedUpstream(port: number, script: Script): Promise<ScriptedUpstream> {
  const queries: ScriptedQuery[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const handle = (msg: Buffer, transport: 'udp' | 'tcp', send: (b: Buffer) => void) => {
    const p = parseQuery(msg);
    if (!p.ok) return;
    const q = p.query;
    const sq: ScriptedQuery = {
      id: q.id, flags: q.flags, qname: q.qname, qtype: q.qtype, ednsPayload: q.ednsPayload, dnssecOk: q.dnssecOk, transport,
      nth: queries.filter((x) => x.qname === q.qname && x.transport === transport).length + 1, at: Date.now(),
    };
    queries.push(sq);
    const reply = script(sq);
    if (!reply) return;
    const out = build(msg, q.questionEnd, q.ednsPayload !== undefined, reply);
    if (!reply.delayMs) return send(out);
    const t = setTimeout(() => { timers.delete(t); send(out); }, reply.delayMs);
    timers.add(t);
  };
  const udp: Socket = createSocket('udp4');
  udp.on('message', (msg, rinfo) => handle(msg, 'udp', (b) => udp.send(b, rinfo.port, rinfo.address)));
  await new Promise<void>((r) => udp.bind(port, '127.0.0.1', () => r()));
  const conns = new Set<TcpSocket>();
  const tcp: Server = createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => c.destroy());
    let pending = Buffer.alloc(0);
    c.on('data', (d) => {
      pending = Buffer.concat([pending, d]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const msg = Buffer.from(pending.subarray(2, 2 + pending.readUInt16BE(0)));
        pending = pending.subarray(2 + msg.length);
        handle(msg, 'tcp', (b) => {
          const len = Buffer.alloc(2);
          len.writeUInt16BE(b.length);
          if (!c.destroyed) c.write(Buffer.concat([len, b]));
        });
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(port, '127.0.0.1', () => r()));
  return {
    port,
    queries,
    queriesFor: (qname, transport) => queries.filter((q) => q.qname === qname && (!transport || q.transport === transport)),
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => udp.close(() => r()));
      await new Promise<void>((r) => tcp.close(() => r()));
    },
  };
}
