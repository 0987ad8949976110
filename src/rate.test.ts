import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './rate.js';

describe('token buckets per key', () => {
  it('gives a burst, then the steady rate, per key', () => {
    const b = new TokenBuckets({ burst: 3, perSecond: 2 });
    expect([1, 2, 3, 4].map(() => b.take('a', 0))).toEqual([true, true, true, false]);
    expect(b.take('b', 0)).toBe(true); // another key is not slowed
    expect(b.take('a', 400)).toBe(false); // 0.8 of a token
    expect(b.take('a', 500)).toBe(true); // one whole token after 0.5 s at 2/s
    expect(b.take('a', 500)).toBe(false);
    expect(b.take('a', 100_000)).toBe(true);
    expect([1, 2, 3].map(() => b.take('a', 100_000))).toEqual([true, true, false]); // never above the burst
  });
  it('gains nothing when the clock goes back', () => {
    const b = new TokenBuckets({ burst: 1, perSecond: 1 });
    expect(b.take('a', 10_000)).toBe(true);
    expect(b.take('a', 0)).toBe(false);
  });
  it('drops the longest-unseen key past maxKeys (it starts full again); the others keep their state', () => {
    const b = new TokenBuckets({ burst: 1, perSecond: 0, maxKeys: 2 });
    expect(b.take('a')).toBe(true);
    expect(b.take('b')).toBe(true);
    expect(b.take('a')).toBe(false); // a seen last: b is the one to go
    expect(b.take('c')).toBe(true);
    expect(b.take('a')).toBe(false); // a was kept, still empty
    expect(b.take('b')).toBe(true); // b was dropped and starts full
  });
});
