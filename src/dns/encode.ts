// Builds an authoritative response in wire format: the query's own header fields and question
// bytes (so the question is echoed exactly as asked), then the records. An owner name equal to
// the question is written as a pointer to it; others are written in full.
import type { AuthAnswer, Rr } from './authority.js';
import { HEADER_LEN, encodeName, errorResponse, optRecord, responseFlags } from './wire.js';

export interface EncodeOptions {
  /** Lower-cased question name, to spot owners that can point at the question. */
  qname: string;
  questionEnd: number;
  /** Include our OPT (the query had one). */
  edns: boolean;
  dnssecOk: boolean;
  /** Largest response the client takes; above it, optional sections go, then header, question, OPT and TC. */
  limit: number;
  aa: boolean;
  ra: boolean;
}

export function encodeAnswer(query: Uint8Array, id: number, flags: number, a: AuthAnswer, o: EncodeOptions): Buffer {
  const sections = [a.answer, a.authority, a.additional].map((rrs) => rrs.map((rr) => encodeRr(rr, o.qname)));
  const bytes = sections.map((parts) => parts.reduce((n, p) => n + p.length, 0));
  const opt = o.edns ? optRecord(0, o.dnssecOk) : undefined;
  const fixed = o.questionEnd + (opt?.length ?? 0);
  // Too big: additional goes first, then authority (unless the answer is empty: a negative
  // answer needs its SOA); TC only when the answer itself does not fit (RFC 2181 §9).
  if (fixed + bytes[0] + bytes[1] + bytes[2] > o.limit) {
    sections[2] = [];
    bytes[2] = 0;
    if (fixed + bytes[0] + bytes[1] > o.limit && a.answer.length) {
      sections[1] = [];
      bytes[1] = 0;
    }
    if (fixed + bytes[0] + bytes[1] > o.limit) {
      return errorResponse(query, id, flags, a.rcode, o.questionEnd, { edns: o.edns, aa: o.aa, ra: o.ra, tc: true, dnssecOk: o.dnssecOk });
    }
  }
  const size = fixed + bytes[0] + bytes[1] + bytes[2];
  const out = Buffer.allocUnsafe(size);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(responseFlags(flags, a.rcode, o.aa, o.ra), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(sections[0].length, 6);
  out.writeUInt16BE(sections[1].length, 8);
  out.writeUInt16BE(sections[2].length + (opt ? 1 : 0), 10);
  out.set(query.subarray(HEADER_LEN, o.questionEnd), HEADER_LEN);
  let off = o.questionEnd;
  for (const parts of sections) for (const p of parts) off += p.copy(out, off);
  if (opt) opt.copy(out, off);
  return out;
}

const POINTER_TO_QUESTION = Buffer.from([0xc0, HEADER_LEN]);

function encodeRr(rr: Rr, qname: string): Buffer {
  const owner = rr.name === qname ? POINTER_TO_QUESTION : encodeName(rr.name);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(rr.type, 0);
  fixed.writeUInt16BE(rr.class ?? 1, 2);
  fixed.writeUInt32BE(rr.ttl >>> 0, 4);
  fixed.writeUInt16BE(rr.rdata.length, 8);
  return Buffer.concat([owner, fixed, rr.rdata]);
}
