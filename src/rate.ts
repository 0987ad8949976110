// Token buckets per key (a VM): a burst, then a steady rate. Used where one guest's requests cost
// the appliance real work (identity signatures, guest-attribute writes to etcd), so one guest in
// a loop slows nobody else. The map is bounded: past `maxKeys` the longest-unseen key is dropped
// (a dropped key starts again with a full burst, which a guest cannot cause for another's key).
export interface TokenBucketOptions {
  burst: number;
  perSecond: number;
  maxKeys?: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly maxKeys: number;

  constructor(private readonly o: TokenBucketOptions) {
    this.maxKeys = o.maxKeys ?? 100_000;
  }

  /** Takes one token for `key` at `nowMs`; false when its bucket is empty. */
  take(key: string, nowMs = Date.now()): boolean {
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key); // re-inserted below: the map's order is least recently seen first
    else {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
      b = { tokens: this.o.burst, at: nowMs };
    }
    b.tokens = Math.min(this.o.burst, b.tokens + (Math.max(0, nowMs - b.at) / 1000) * this.o.perSecond);
    b.at = nowMs;
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
