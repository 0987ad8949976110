// DNS wire format, only as much as this server needs: the header and question of a query, the
// OPT record, name encoding, and a walk over a response's records (for TTLs and validation).
// Hand-written rather than dns2's Packet because the hot path must not allocate a decoded
// message per query, and because every read here is bounds-checked: a malformed packet yields
// an error value, never an exception from deep inside a generic decoder.

export const TYPE = { A: 1, NS: 2, SOA: 6, PTR: 12, AAAA: 28, SSHFP: 44, OPT: 41, RRSIG: 46, NSEC: 47, NSEC3: 50, IXFR: 251, AXFR: 252, ANY: 255 } as const;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;
export const CLASS_CH = 3;
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** Extended RCODE 16 (BADVERS): its upper 8 bits go in the OPT TTL, its lower 4 (zero) in the header. */
export const RCODE_BADVERS = 16;

export const HEADER_LEN = 12;
/** What we advertise in our OPT: the DNS flag day 2020 size that avoids IP fragmentation. */
export const OUR_UDP_PAYLOAD = 1232;
/** Header flag bits this server reads or writes besides QR/opcode/RD/RA/rcode. */
export const FLAG = { TC: 0x0200, RD: 0x0100, AD: 0x0020, CD: 0x0010 } as const;

/**
 * The largest UDP answer a client gets: 512 without EDNS, else the smaller of its advertised size
 * and ours (DNS flag day 2020: neither side may receive more than it advertised).
 */
export function udpLimit(ednsPayload: number | undefined): number {
  return ednsPayload === undefined ? 512 : Math.min(ednsPayload, OUR_UDP_PAYLOAD);
}

export interface Query {
  id: number;
  /** Flags word of the query (RD, CD are echoed). */
  flags: number;
  opcode: number;
  /** Offset just past the question (QNAME + QTYPE + QCLASS). */
  questionEnd: number;
  /** QNAME lower-cased, dotted, without the trailing dot ("" for the root). */
  qname: string;
  qtype: number;
  qclass: number;
  /** EDNS: undefined without OPT, else the advertised payload size (at least 512). */
  ednsPayload?: number;
  ednsVersion: number;
  /** The DO bit, echoed in our OPT. */
  dnssecOk: boolean;
}

export type ParseResult =
  | { ok: true; query: Query }
  /** Header readable: answer with `rcode` (question echoed when `questionEnd` is set). */
  | { ok: false; silent: false; rcode: number; id: number; flags: number; questionEnd?: number; ednsPayload?: number; reason: string }
  /** Not even a header, or a response: stay silent. */
  | { ok: false; silent: true; reason: string };

/**
 * Reads an uncompressed QNAME at `off`; returns the offset past it, or -1 when malformed
 * (pointer, reserved label type, overrun, longer than 255).
 */
export function skipQname(buf: Uint8Array, off: number): number {
  const start = off;
  for (;;) {
    if (off >= buf.length) return -1;
    const len = buf[off];
    if (len === 0) return off + 1 - start > 255 ? -1 : off + 1;
    if (len > 63) return -1;
    off += len + 1;
    if (off - start > 255) return -1;
  }
}

/** Lower-cased dotted text of an uncompressed name known to be well formed (from skipQname). */
export function readQname(buf: Uint8Array, off: number): string {
  let out = '';
  for (;;) {
    const len = buf[off];
    if (len === 0) return out;
    if (out) out += '.';
    out += labelText(buf, off + 1, len);
    off += len + 1;
  }
}

/** One label as lower-cased text; dots, backslashes and non-printables escaped as \DDD. */
function labelText(buf: Uint8Array, start: number, len: number): string {
  let out = '';
  for (let i = start; i < start + len; i++) {
    let c = buf[i];
    if (c >= 65 && c <= 90) c += 32;
    out += c === 46 || c === 92 || c < 33 || c > 126 ? `\\${String(c).padStart(3, '0')}` : String.fromCharCode(c);
  }
  return out;
}

/** Skips a possibly compressed name in a full message; -1 when malformed. Pointers are not followed. */
export function skipName(buf: Uint8Array, off: number): number {
  for (let n = 0; n < 128; n++) {
    if (off >= buf.length) return -1;
    const len = buf[off];
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if (len > 63) return -1;
    off += len + 1;
  }
  return -1;
}

/** Reads a possibly compressed name, lower-cased; undefined on loops, overruns or bad labels. */
export function readName(buf: Uint8Array, off: number): string | undefined {
  const labels: string[] = [];
  let total = 0;
  for (let hops = 0; hops < 64; ) {
    if (off >= buf.length) return undefined;
    const len = buf[off];
    if (len === 0) return labels.join('.');
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) return undefined;
      const target = ((len & 0x3f) << 8) | buf[off + 1];
      // Pointers must go backwards; this also bounds the walk.
      if (target >= off) return undefined;
      off = target;
      hops++;
      continue;
    }
    if (len > 63 || off + 1 + len > buf.length) return undefined;
    total += len + 1;
    if (total > 255) return undefined;
    labels.push(labelText(buf, off + 1, len));
    off += len + 1;
  }
  return undefined;
}

/** EDNS option codes this parser checks the shape of. */
const OPTION_COOKIE = 10;

/**
 * Why the options of an OPT are malformed, or undefined when they are well formed: an option
 * running past the OPT's RDATA, or a COOKIE that is neither a client cookie alone (8 bytes) nor
 * one with a server cookie (16 to 40 bytes) (RFC 6891 §6.1.2, RFC 7873 §5.2.2).
 */
export function badOptions(buf: Uint8Array, start: number, end: number): string | undefined {
  for (let off = start; off < end; ) {
    if (off + 4 > end) return 'EDNS option header overruns the OPT';
    const code = (buf[off] << 8) | buf[off + 1];
    const len = (buf[off + 2] << 8) | buf[off + 3];
    off += 4;
    if (off + len > end) return 'EDNS option overruns the OPT';
    if (code === OPTION_COOKIE && (len < 8 || (len > 8 && len < 16) || len > 40)) return `COOKIE of ${len} bytes`;
    off += len;
  }
  return undefined;
}

/**
 * Parses a query's header, question and OPT. Never throws. The whole message is walked first,
 * so that every error answer carries an OPT when the query had one (RFC 6891 §7) and bytes
 * past the last record are refused (FORMERR), not silently ignored.
 */
export function parseQuery(buf: Uint8Array): ParseResult {
  if (buf.length < HEADER_LEN) return { ok: false, silent: true, reason: 'short header' };
  const id = (buf[0] << 8) | buf[1];
  const flags = (buf[2] << 8) | buf[3];
  if (flags & 0x8000) return { ok: false, silent: true, reason: 'not a query' };
  const opcode = (flags >> 11) & 0xf;
  const qd = (buf[4] << 8) | buf[5];
  const an = (buf[6] << 8) | buf[7];
  const ns = (buf[8] << 8) | buf[9];
  const ar = (buf[10] << 8) | buf[11];

  let questionEnd: number | undefined;
  let malformed: string | undefined;
  let off = HEADER_LEN;
  for (let i = 0; i < qd && !malformed; i++) {
    const end = i === 0 ? skipQname(buf, off) : skipName(buf, off);
    if (end < 0 || end + 4 > buf.length) malformed = 'bad question';
    else off = end + 4;
    if (i === 0 && !malformed) questionEnd = off;
  }
  let ednsPayload: number | undefined;
  let ednsVersion = 0;
  let dnssecOk = false;
  for (let i = 0; i < an + ns + ar && !malformed; i++) {
    const nameAt = off;
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) {
      malformed = 'bad record';
      break;
    }
    const type = (buf[off] << 8) | buf[off + 1];
    const rdlen = (buf[off + 8] << 8) | buf[off + 9];
    if (off + 10 + rdlen > buf.length) {
      malformed = 'record overruns the message';
      break;
    }
    if (type === TYPE.OPT && i >= an + ns) {
      if (ednsPayload !== undefined) malformed = 'repeated OPT';
      else {
        ednsPayload = Math.max(512, (buf[off + 2] << 8) | buf[off + 3]);
        ednsVersion = buf[off + 5];
        dnssecOk = (buf[off + 6] & 0x80) !== 0;
        malformed = buf[nameAt] !== 0 ? 'OPT owner is not the root' : badOptions(buf, off + 10, off + 10 + rdlen);
      }
    }
    off += 10 + rdlen;
  }
  if (!malformed && off !== buf.length) malformed = 'bytes after the last record';

  const fail = (rcode: number, reason: string) =>
    ({ ok: false as const, silent: false as const, rcode, id, flags, questionEnd: qd === 1 ? questionEnd : undefined, ednsPayload, reason });
  if (malformed) return fail(RCODE.FORMERR, malformed);
  if (opcode !== 0) return fail(RCODE.NOTIMP, `opcode ${opcode}`);
  if (qd !== 1) return fail(RCODE.FORMERR, `qdcount ${qd}`);
  if (an !== 0 || ns !== 0) return fail(RCODE.FORMERR, 'records in a query');
  if (ednsVersion !== 0) return fail(RCODE_BADVERS, `EDNS version ${ednsVersion}`);
  const nameEnd = questionEnd! - 4;
  return {
    ok: true,
    query: {
      id, flags, opcode, questionEnd: questionEnd!, qname: readQname(buf, HEADER_LEN),
      qtype: (buf[nameEnd] << 8) | buf[nameEnd + 1], qclass: (buf[nameEnd + 2] << 8) | buf[nameEnd + 3],
      ednsPayload, ednsVersion, dnssecOk,
    },
  };
}

/** Encodes a dotted name (no compression). The name must be valid: it comes from the registry. */
export function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter(Boolean);
  const out = Buffer.alloc(parts.reduce((n, p) => n + p.length + 1, 1));
  let off = 0;
  for (const p of parts) {
    out[off++] = p.length;
    off += out.write(p, off, 'latin1');
  }
  return out;
}

/** Our OPT record: root name, our payload size, no extended rcode unless given, DO echoed. */
export function optRecord(extendedRcodeHigh = 0, dnssecOk = false): Buffer {
  const b = Buffer.alloc(11);
  b.writeUInt16BE(TYPE.OPT, 1);
  b.writeUInt16BE(OUR_UDP_PAYLOAD, 3);
  b[5] = extendedRcodeHigh;
  b[7] = dnssecOk ? 0x80 : 0;
  return b;
}

/** The flags word of a response to a query: QR, opcode, RD and CD echoed, plus AA/RA/rcode. */
export function responseFlags(queryFlags: number, rcode: number, aa: boolean, ra: boolean): number {
  return 0x8000 | (queryFlags & 0x7900) | (aa ? 0x0400 : 0) | (ra ? 0x0080 : 0) | (queryFlags & 0x0010) | (rcode & 0xf);
}

/** A header-and-question-only answer (errors, REFUSED, truncation). */
export function errorResponse(
  query: Uint8Array, id: number, flags: number, rcode: number, questionEnd: number | undefined,
  opts: { edns?: boolean; aa?: boolean; ra?: boolean; tc?: boolean; extendedRcodeHigh?: number; dnssecOk?: boolean } = {},
): Buffer {
  const qlen = questionEnd ? questionEnd - HEADER_LEN : 0;
  const opt = opts.edns ? optRecord(opts.extendedRcodeHigh, opts.dnssecOk) : undefined;
  const out = Buffer.alloc(HEADER_LEN + qlen + (opt?.length ?? 0));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(responseFlags(flags, rcode, !!opts.aa, !!opts.ra) | (opts.tc ? 0x0200 : 0), 2);
  out.writeUInt16BE(qlen ? 1 : 0, 4);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  if (qlen) out.set(query.subarray(HEADER_LEN, questionEnd), HEADER_LEN);
  if (opt) opt.copy(out, HEADER_LEN + qlen);
  return out;
}

export interface RecordRef {
  /** Offset of the record's owner name. */
  start: number;
  end: number;
  type: number;
  ttlOffset: number;
  ttl: number;
  rdataOffset: number;
  rdlength: number;
  section: 'answer' | 'authority' | 'additional';
}

export interface ParsedResponse {
  id: number;
  flags: number;
  rcode: number;
  qname: string;
  qtype: number;
  qclass: number;
  questionEnd: number;
  records: RecordRef[];
}

/** Walks a response from an upstream: question and every record, bounds-checked. */
export function parseResponse(buf: Uint8Array): ParsedResponse | undefined {
  if (buf.length < HEADER_LEN) return undefined;
  const flags = (buf[2] << 8) | buf[3];
  if (!(flags & 0x8000)) return undefined;
  if (((buf[4] << 8) | buf[5]) !== 1) return undefined;
  const counts = [(buf[6] << 8) | buf[7], (buf[8] << 8) | buf[9], (buf[10] << 8) | buf[11]];
  const nameEnd = skipName(buf, HEADER_LEN);
  if (nameEnd < 0 || nameEnd + 4 > buf.length) return undefined;
  const qname = readName(buf, HEADER_LEN);
  if (qname === undefined) return undefined;
  const records: RecordRef[] = [];
  let off = nameEnd + 4;
  const sections = ['answer', 'authority', 'additional'] as const;
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s]; i++) {
      const start = off;
      off = skipName(buf, off);
      if (off < 0 || off + 10 > buf.length) return undefined;
      const rdlength = (buf[off + 8] << 8) | buf[off + 9];
      if (off + 10 + rdlength > buf.length) return undefined;
      records.push({
        start, end: off + 10 + rdlength, type: (buf[off] << 8) | buf[off + 1], ttlOffset: off + 4,
        ttl: ((buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]) >>> 0,
        rdataOffset: off + 10, rdlength, section: sections[s],
      });
      off += 10 + rdlength;
    }
  }
  return {
    id: (buf[0] << 8) | buf[1], flags, rcode: flags & 0xf, qname,
    qtype: (buf[nameEnd] << 8) | buf[nameEnd + 1], qclass: (buf[nameEnd + 2] << 8) | buf[nameEnd + 3],
    questionEnd: nameEnd + 4, records,
  };
}

/**
 * A query as we send it upstream: RD and AD set (RFC 6840 §5.7: AD asks whether the upstream
 * validated), CD and DO as the client asked; our OPT unless `edns` is false (an upstream that
 * answered FORMERR to EDNS).
 */
export function buildQuery(
  id: number, qnameWire: Uint8Array, qtype: number, qclass: number,
  o: { edns?: boolean; dnssecOk?: boolean; checkingDisabled?: boolean } = {},
): Buffer {
  const opt = o.edns === false ? undefined : optRecord(0, !!o.dnssecOk);
  const out = Buffer.alloc(HEADER_LEN + qnameWire.length + 4 + (opt?.length ?? 0));
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(FLAG.RD | FLAG.AD | (o.checkingDisabled ? FLAG.CD : 0), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(opt ? 1 : 0, 10);
  out.set(qnameWire, HEADER_LEN);
  let off = HEADER_LEN + qnameWire.length;
  out.writeUInt16BE(qtype, off);
  out.writeUInt16BE(qclass, off + 2);
  opt?.copy(out, off + 4);
  return out;
}
