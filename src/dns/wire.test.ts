// Pure wire-format logic: query parsing, the hot-path key, names with pointers and loops.
import { describe, expect, it } from 'vitest';
import { hotQuestion, serveCached } from './answer-cache.js';
import { RCODE, RCODE_BADVERS, buildQuery, encodeName, parseQuery, parseResponse, readName } from './wire.js';

const q = (name: string, type = 28, cls = 1) => buildQuery(0xbeef, encodeName(name), type, cls);

describe('parseQuery', () => {
  it('reads the question lower-cased, and the OPT', () => {
    const p = parseQuery(q('MetaData.Lab.Example'));
    expect(p.ok && p.query).toMatchObject({ id: 0xbeef, qname: 'metadata.lab.example', qtype: 28, qclass: 1, ednsPayload: 1232, dnssecOk: false });
  });
  it('refuses pointers in the question, bad counts, other opcodes and classes, unknown EDNS versions', () => {
    const ptr = q('a.example');
    ptr[12] = 0xc0;
    ptr[13] = 12;
    expect(parseQuery(ptr)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const two = q('a.example');
    two.writeUInt16BE(2, 4);
    expect(parseQuery(two)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
    const status = q('a.example');
    status[2] |= 2 << 3;
    expect(parseQuery(status)).toMatchObject({ ok: false, rcode: RCODE.NOTIMP });
    // Other classes parse: the responder refuses them (as Knot does) or answers CHAOS identity.
    expect(parseQuery(q('a.example', 1, 4))).toMatchObject({ ok: true, query: { qclass: 4 } });
    const v1 = q('a.example');
    v1[v1.length - 11 + 6] = 1;
    expect(parseQuery(v1)).toMatchObject({ ok: false, rcode: RCODE_BADVERS });
    expect(parseQuery(Buffer.alloc(5))).toMatchObject({ ok: false, silent: true });
  });
  it('rejects names longer than 255 octets', () => {
    const long = Buffer.concat([Buffer.alloc(12), ...Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 97)])), Buffer.from([0, 0, 1, 0, 1])]);
    long.writeUInt16BE(1, 4);
    expect(parseQuery(long)).toMatchObject({ ok: false, rcode: RCODE.FORMERR });
  });
});

describe('hotQuestion', () => {
  it('keys by the lower-cased question and the EDNS size, so case variants share an entry', () => {
    const a = hotQuestion(q('METADATA.lab.example'))!;
    const b = hotQuestion(q('metadata.LAB.example'))!;
    expect(a.key).toBe(b.key);
    const plain = q('metadata.lab.example').subarray(0, -11);
    plain.writeUInt16BE(0, 10);
    expect(hotQuestion(Buffer.from(plain))!.key).not.toBe(a.key);
    expect(hotQuestion(q('metadata.lab.example', 1))!.key).not.toBe(a.key);
  });
  it('leaves anything unusual to the full parser', () => {
    const resp = q('a.example');
    resp[2] |= 0x80;
    expect(hotQuestion(resp)).toBeUndefined();
    expect(hotQuestion(q('a.example').subarray(0, 20))).toBeUndefined();
    const v1 = q('a.example');
    v1[v1.length - 11 + 6] = 1;
    expect(hotQuestion(v1)).toBeUndefined();
  });
  it('serves a cached answer with the new ID, RD bit and question case', () => {
    const first = q('metadata.lab.example');
    const cachedWire = Buffer.concat([first.subarray(0, first.length - 11), Buffer.alloc(0)]);
    cachedWire[2] = 0x84; // QR AA, RD clear
    const next = q('MetaData.LAB.example');
    next.writeUInt16BE(0x1234, 0);
    const h = hotQuestion(next)!;
    const out = serveCached({ wire: cachedWire, qtype: 28, rcode: 0, recursive: false, ttlOffsets: [], ttls: [], storedAt: 0, expiresAt: Infinity }, next, h.questionEnd, 0);
    expect(out.readUInt16BE(0)).toBe(0x1234);
    expect(out[2]).toBe(0x85);
    expect(out.subarray(12, h.questionEnd).toString('latin1')).toContain('MetaData');
  });
});

describe('names with compression', () => {
  it('follows backward pointers and stops at loops', () => {
    const b = Buffer.concat([Buffer.alloc(12), encodeName('example.org'), Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 12])]);
    expect(readName(b, 12 + 13)).toBe('www.example.org');
    const loop = Buffer.concat([Buffer.alloc(12), Buffer.from([1, 0x61, 0xc0, 12])]);
    expect(readName(loop, 12)).toBeUndefined();
    const self = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 12])]);
    expect(readName(self, 12)).toBeUndefined();
    expect(parseResponse(Buffer.concat([Buffer.from([0, 1, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0]), encodeName('a'), Buffer.from([0, 1, 0, 1])]))).toBeUndefined();
  });
});
