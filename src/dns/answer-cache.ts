// The wire-format answer cache the UDP hot path serves from. The key is the question exactly as
// it sits in the packet, lower-cased (QNAME + QTYPE + QCLASS), plus the EDNS size class; serving
// a hit is a copy, an ID/flags patch, the client's own question bytes, and (for forwarded
// answers) TTLs aged in place. Nothing on that path decodes or encodes a message.
import { FLAG, HEADER_LEN, OUR_UDP_PAYLOAD, TYPE, badOptions } from './wire.js';

export interface CachedWire {
  wire: Buffer;
  /** Counted in metrics on every hit. */
  qtype: number;
  rcode: number;
  /** Forwarded answers: only for clients the recursion ACL allows, and they age. */
  recursive: boolean;
  ttlOffsets: number[];
  ttls: number[];
  storedAt: number;
  /** ms since epoch; Infinity for authoritative answers (dropped on registry change instead). */
  expiresAt: number;
  /** AD is in `wire` for clients that asked; cleared for a query without AD (no DO: the key does not say). */
  adFollowsQuery?: boolean;
  /** `wire` with TTLs aged by `agedBy` seconds: re-patched once a second, not once a query. */
  aged?: Buffer;
  agedBy?: number;
}

export interface HotQuestion {
  key: string;
  questionEnd: number;
  qtype: number;
}

const scratch = Buffer.alloc(512);

/**
 * The cache key of a plain query (one question, at most one OPT and nothing else), or undefined
 * when the packet needs the full parser. Cheap: one pass over the name, no allocation for an
 * all-lower-case name beyond the key string itself.
 */
export function hotQuestion(buf: Buffer): HotQuestion | undefined {
  const len = buf.length;
  if (len < 17) return undefined;
  // QR=0, opcode 0 (byte 2 bits 7..3 zero), QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 0 or 1.
  if ((buf[2] & 0xf8) !== 0 || buf[4] !== 0 || buf[5] !== 1 || buf[6] !== 0 || buf[7] !== 0 || buf[8] !== 0 || buf[9] !== 0 || buf[10] !== 0 || buf[11] > 1) return undefined;
  let off = HEADER_LEN;
  let upper = false;
  for (;;) {
    if (off >= len) return undefined;
    const l = buf[off];
    if (l === 0) break;
    if (l > 63) return undefined;
    const end = off + 1 + l;
    if (end > len) return undefined;
    for (let i = off + 1; i < end; i++) {
      const c = buf[i];
      if ((c >= 65 && c <= 90) || c >= 0x80) upper = true;
    }
    off = end;
  }
  const nameEnd = off + 1;
  const questionEnd = nameEnd + 4;
  if (questionEnd > len || questionEnd - HEADER_LEN > 259) return undefined;
  let sizeClass: string;
  if (buf[11] === 0) {
    if (questionEnd !== len) return undefined;
    sizeClass = '';
  } else {
    // The OPT: root owner, type 41, version 0 (byte 6; byte 5 is the extended RCODE), nothing after it.
    if (questionEnd + 11 > len || buf[questionEnd] !== 0 || buf[questionEnd + 1] !== 0 || buf[questionEnd + 2] !== TYPE.OPT || buf[questionEnd + 6] !== 0) return undefined;
    const rdlen = (buf[questionEnd + 9] << 8) | buf[questionEnd + 10];
    if (questionEnd + 11 + rdlen !== len) return undefined;
    // Malformed options (an overrun, a bad COOKIE) are FORMERR: the full parser answers them.
    if (rdlen && badOptions(buf, questionEnd + 11, len)) return undefined;
    // Answers are cut to min(client's size, ours): sizes above ours share one entry.
    const payload = Math.min(OUR_UDP_PAYLOAD, Math.max(512, (buf[questionEnd + 3] << 8) | buf[questionEnd + 4]));
    sizeClass = `/${payload}${buf[questionEnd + 7] & 0x80 ? 'd' : ''}`;
  }
  // CD changes what a validating upstream sends: its own entry.
  if (buf[3] & FLAG.CD) sizeClass += 'c';
  let q: string;
  if (!upper) {
    q = buf.toString('latin1', HEADER_LEN, questionEnd);
  } else {
    // ASCII-only case folding (a byte >= 0x80 is left alone, unlike latin1 toLowerCase).
    for (let i = HEADER_LEN; i < nameEnd; i++) {
      const c = buf[i];
      scratch[i - HEADER_LEN] = c >= 65 && c <= 90 ? c + 32 : c;
    }
    buf.copy(scratch, nameEnd - HEADER_LEN, nameEnd, questionEnd);
    q = scratch.toString('latin1', 0, questionEnd - HEADER_LEN);
  }
  return { key: q + sizeClass, questionEnd, qtype: (buf[nameEnd] << 8) | buf[nameEnd + 1] };
}

/** A response for this query from a cached one: ID, RD/CD and the question bytes from the query. */
export function serveCached(entry: CachedWire, query: Buffer, questionEnd: number, now: number): Buffer {
  let src = entry.wire;
  const offsets = entry.ttlOffsets;
  if (offsets.length) {
    const age = Math.floor((now - entry.storedAt) / 1000);
    if (entry.agedBy !== age) {
      const aged = Buffer.from(entry.wire);
      for (let i = 0; i < offsets.length; i++) aged.writeUInt32BE(Math.max(0, entry.ttls[i] - age), offsets[i]);
      entry.aged = aged;
      entry.agedBy = age;
    }
    src = entry.aged!;
  }
  const out = Buffer.allocUnsafe(src.length);
  src.copy(out);
  out[0] = query[0];
  out[1] = query[1];
  out[2] = (out[2] & 0xfe) | (query[2] & 0x01);
  out[3] = (out[3] & 0xef) | (query[3] & 0x10);
  if (entry.adFollowsQuery && !(query[3] & FLAG.AD)) out[3] &= ~FLAG.AD;
  query.copy(out, HEADER_LEN, HEADER_LEN, questionEnd);
  return out;
}

/**
 * One question's answers: `shared` when it is the same for every client (authoritative names),
 * else one per client variant ("f<upstream group>" for forwarded names, "m<network>" for the
 * bare `metadata.`), so the hot path needs one lookup by question and one by the client's variant.
 */
export interface CacheSlot {
  shared?: CachedWire;
  variants?: Map<string, CachedWire>;
}

/** Insertion-ordered map of slots with a size bound: when full, the oldest question goes. */
export class AnswerCache {
  private map = new Map<string, CacheSlot>();
  constructor(private readonly maxEntries = 50_000) {}

  get(key: string): CacheSlot | undefined {
    return this.map.get(key);
  }

  setShared(key: string, entry: CachedWire): void {
    this.slot(key).shared = entry;
  }

  setVariant(key: string, variant: string, entry: CachedWire): void {
    const slot = this.slot(key);
    (slot.variants ??= new Map()).set(variant, entry);
  }

  clear(): void {
    this.map = new Map();
  }

  get size(): number {
    return this.map.size;
  }

  private slot(key: string): CacheSlot {
    let slot = this.map.get(key);
    if (!slot) {
      if (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value!);
      slot = {};
      this.map.set(key, slot);
    }
    return slot;
  }
}
