// Response-rate limiting per client prefix, BIND RRL's idea: each prefix (IPv4 /24, IPv6 /56 by
// default) earns `responsesPerSecond` answers a second (a one-second burst); past that, answers
// are dropped, except every `slip`-th one, which goes out truncated (TC, no records) so a real
// client behind a spoofed flood can still get its answer over TCP. UDP only: TCP cannot be
// spoofed, so it cannot reflect.
import { parseAddress } from '../model/ip.js';
import { HEADER_LEN, TYPE, parseResponse } from './wire.js';

export interface RateLimitOptions {
  /** Answers per second per prefix; 0 turns limiting off. */
  responsesPerSecond: number;
  /** Every slip-th limited answer is sent truncated; 0 drops them all. */
  slip: number;
  ipv4PrefixLength: number;
  ipv6PrefixLength: number;
}

export const RRL_DEFAULTS: RateLimitOptions = { responsesPerSecond: 20, slip: 2, ipv4PrefixLength: 24, ipv6PrefixLength: 56 };

export type RateVerdict = 'send' | 'drop' | 'slip';

interface Bucket { balance: number; at: number; limited: number }

const MAX_BUCKETS = 100_000;

export class ResponseRateLimiter {
  private buckets = new Map<string, Bucket>();
  constructor(readonly opts: RateLimitOptions) {}

  get enabled(): boolean {
    return this.opts.responsesPerSecond > 0;
  }

  /** The prefix an address is counted under. */
  prefixOf(address: string): string {
    const a = parseAddress(address);
    if (!a) return address;
    const bits = a.kind() === 'ipv4' ? this.opts.ipv4PrefixLength : this.opts.ipv6PrefixLength;
    const bytes = a.toByteArray();
    const out: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const keep = Math.max(0, Math.min(8, bits - i * 8));
      out.push(bytes[i] & (0xff << (8 - keep)) & 0xff);
    }
    return `${a.kind()}/${out.join('.')}`;
  }

  /** Whether one more answer to `address` goes out now. */
  check(address: string, now = Date.now()): RateVerdict {
    if (!this.enabled) return 'send';
    const key = this.prefixOf(address);
    const rate = this.opts.responsesPerSecond;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
      b = { balance: rate, at: now, limited: 0 };
      this.buckets.set(key, b);
    }
    b.balance = Math.min(rate, b.balance + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.balance >= 1) {
      b.balance -= 1;
      return 'send';
    }
    b.limited++;
    return this.opts.slip > 0 && b.limited % this.opts.slip === 0 ? 'slip' : 'drop';
  }
}

/** A slipped answer: the header (TC set, no records) and question of `out`, and its OPT if it had one. */
export function slipResponse(out: Buffer): Buffer {
  const parsed = out.readUInt16BE(4) === 1 ? parseResponse(out) : undefined;
  const questionEnd = parsed?.questionEnd ?? HEADER_LEN;
  const opt = parsed?.records.find((r) => r.type === TYPE.OPT);
  const slip = Buffer.concat([out.subarray(0, questionEnd), opt ? out.subarray(opt.start, opt.end) : Buffer.alloc(0)]);
  slip[2] |= 0x02;
  slip.writeUInt16BE(0, 6);
  slip.writeUInt16BE(0, 8);
  slip.writeUInt16BE(opt ? 1 : 0, 10);
  return slip;
}
