// An upstream answer as the cache keeps it, and a client's response cut from it. The upstream's
// records are kept byte for byte (RRSIG, NSEC and NSEC3 included: a validating client checks
// them itself); only TTLs are rewritten, to what we will actually serve as the entry ages.
import { FLAG, HEADER_LEN, RCODE, TYPE, errorResponse, optRecord, responseFlags, type ParsedResponse, type Query } from './wire.js';

/** An upstream answer ready to serve: no OPT, ID zero, TTL positions known. */
export interface CachedAnswer {
  core: Buffer;
  rcode: number;
  /** The upstream set AD (it validated the data); passed on only when the upstream is trusted. */
  authenticData: boolean;
  /** Offsets (in `core`) and starting values of every TTL, decremented as the entry ages. */
  ttlOffsets: number[];
  ttls: number[];
  /** Record counts per section, and where the answer and authority sections end in `core`. */
  counts: [number, number, number];
  answerEnd: number;
  authorityEnd: number;
  /** The authority section cannot be dropped to fit (negative answers, NSEC/NSEC3 proofs). */
  authorityRequired: boolean;
  storedAt: number;
  /** ms since epoch; `storedAt` when it must not be cached. */
  expiresAt: number;
}

/** RFC 2181 §8: a TTL with the top bit set is treated as zero. */
function sane(ttl: number): number {
  return ttl >= 0x80000000 ? 0 : ttl;
}

/**
 * Strips the upstream's OPT, zeroes the ID, and works out how long the answer may be cached:
 * the smallest TTL for a positive answer, min(SOA TTL, SOA MINIMUM) for a negative one (RFC
 * 2308 §5), whose authority TTLs are then lowered to that, so the SOA a client sees says how long
 * to cache the negative answer and counts down with our entry.
 */
export function prepareAnswer(buf: Buffer, p: ParsedResponse, maxTtl: number, now: number): CachedAnswer {
  let records = p.records;
  let end = buf.length;
  const firstOpt = records.findIndex((r) => r.type === TYPE.OPT);
  const counts: [number, number, number] = [buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  if (firstOpt >= 0) {
    // Drop the OPT and anything after it in the additional section: names after it may
    // point into bytes we cut, and additional data is optional anyway.
    counts[2] -= records.length - firstOpt;
    end = records[firstOpt].start;
    records = records.slice(0, firstOpt);
  }
  const core = Buffer.from(buf.subarray(0, end));
  core.writeUInt16BE(0, 0);
  core.writeUInt16BE(counts[2], 10);
  const ttls = records.map((r) => Math.min(sane(r.ttl), maxTtl));
  const answers = records.filter((r) => r.section === 'answer');
  const authority = records.filter((r) => r.section === 'authority');
  let ttl = 0;
  if (p.rcode === RCODE.NOERROR && answers.length) {
    ttl = Math.min(...ttls);
  } else if (p.rcode === RCODE.NXDOMAIN || p.rcode === RCODE.NOERROR) {
    // Without a SOA a negative answer is not cached at all.
    const soaIndex = records.findIndex((r) => r.section === 'authority' && r.type === TYPE.SOA);
    const soa = records[soaIndex];
    if (soa && soa.rdlength >= 20) {
      ttl = Math.min(ttls[soaIndex], sane(buf.readUInt32BE(soa.rdataOffset + soa.rdlength - 4)), maxTtl);
      records.forEach((r, i) => { if (r.section === 'authority') ttls[i] = Math.min(ttls[i], ttl); });
    }
  }
  const answerEnd = answers.length ? answers[answers.length - 1].end : p.questionEnd;
  const authorityEnd = authority.length ? authority[authority.length - 1].end : answerEnd;
  return {
    core, rcode: p.rcode, authenticData: (p.flags & FLAG.AD) !== 0,
    ttlOffsets: records.map((r) => r.ttlOffset), ttls,
    counts, answerEnd, authorityEnd,
    authorityRequired: !answers.length || authority.some((r) => r.type === TYPE.NSEC || r.type === TYPE.NSEC3),
    storedAt: now, expiresAt: now + Math.max(0, ttl) * 1000,
  };
}

/** A SERVFAIL to cache (RFC 9520 §3.2: resolution failures are remembered briefly) or not (`ttlMs` 0). */
export function failureAnswer(qnameWire: Buffer, qtype: number, qclass: number, now: number, ttlMs: number): CachedAnswer {
  const core = Buffer.alloc(HEADER_LEN + qnameWire.length + 4);
  core.writeUInt16BE(0x8180 | RCODE.SERVFAIL, 2);
  core.writeUInt16BE(1, 4);
  qnameWire.copy(core, HEADER_LEN);
  core.writeUInt16BE(qtype, HEADER_LEN + qnameWire.length);
  core.writeUInt16BE(qclass, HEADER_LEN + qnameWire.length + 2);
  return {
    core, rcode: RCODE.SERVFAIL, authenticData: false, ttlOffsets: [], ttls: [], counts: [0, 0, 0],
    answerEnd: core.length, authorityEnd: core.length, authorityRequired: false, storedAt: now, expiresAt: now + ttlMs,
  };
}

export interface ForwardedResponse {
  out: Buffer;
  /** How many of the answer's TTL positions the response carries (a prefix: records are in order). */
  ttlCount: number;
}

/**
 * A client's response from a cached upstream answer: its ID, RD and CD, its question bytes, aged
 * TTLs, our OPT, AD only when `authenticData` says so. Larger than `limit`: additional goes
 * first, then authority unless required, and only when the answer itself does not fit is the
 * response cut to header + question with TC (RFC 2181 §9).
 */
export function forwardedResponse(msg: Buffer, q: Query, a: CachedAnswer, limit: number, authenticData: boolean, now: number): ForwardedResponse {
  const opt = q.ednsPayload !== undefined ? optRecord(0, q.dnssecOk) : undefined;
  const optLen = opt?.length ?? 0;
  let end = a.core.length;
  let [an, ns, ar] = a.counts;
  if (end + optLen > limit) {
    ar = 0;
    end = a.authorityEnd;
    if (end + optLen > limit && !a.authorityRequired) {
      ns = 0;
      end = a.answerEnd;
    }
    if (end + optLen > limit) {
      const out = errorResponse(msg, q.id, q.flags, a.rcode, q.questionEnd, { edns: !!opt, ra: true, tc: true, dnssecOk: q.dnssecOk });
      return { out, ttlCount: 0 };
    }
  }
  const out = Buffer.allocUnsafe(end + optLen);
  a.core.copy(out, 0, 0, end);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(responseFlags(q.flags, a.rcode, false, true) | (authenticData ? FLAG.AD : 0), 2);
  out.writeUInt16BE(ns, 8);
  out.writeUInt16BE(ar + (opt ? 1 : 0), 10);
  out.writeUInt16BE(an, 6);
  msg.copy(out, HEADER_LEN, HEADER_LEN, q.questionEnd);
  const ttlCount = an + ns + ar;
  const age = Math.floor((now - a.storedAt) / 1000);
  for (let i = 0; i < ttlCount; i++) out.writeUInt32BE(Math.max(0, a.ttls[i] - age), a.ttlOffsets[i]);
  opt?.copy(out, end);
  return { out, ttlCount };
}
