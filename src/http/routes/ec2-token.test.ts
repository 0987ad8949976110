// IMDSv2 tokens as pure logic: TTL parsing, binding to the VM, expiry, tampering, other secrets.
import { describe, expect, it } from 'vitest';
import type { VmView } from '../../registry/registry.js';
import { issueToken, parseTtl, verifyToken } from './ec2-token.js';

const vm = (key: string, id: string) => ({ key, vm: { id } }) as unknown as VmView;
const a = vm('lab/a', '11111111-1111-4111-8111-111111111111');
const b = vm('lab/b', '22222222-2222-4222-8222-222222222222');
const aAgain = vm('lab/a', '33333333-3333-4333-8333-333333333333');
const secret = Buffer.from('s1');
const now = 1_700_000_000_000;

describe('IMDSv2 tokens', () => {
  it('parses TTLs of 1-21600 only', () => {
    expect(parseTtl('1')).toBe(1);
    expect(parseTtl('21600')).toBe(21600);
    for (const bad of [undefined, '', '0', '21601', '99999', '1e3', ' 5', '5 ', '-1', '0x10', '3.0']) expect(parseTtl(bad), String(bad)).toBeUndefined();
  });

  it('verifies for the same VM and secret until expiry', () => {
    const tok = issueToken(secret, a, 60, now);
    expect(verifyToken(secret, a, tok, now)).toBe(true);
    expect(verifyToken(secret, a, tok, now + 59_000)).toBe(true);
    expect(verifyToken(secret, a, tok, now + 60_000)).toBe(false);
  });

  it('is worthless for another VM, a re-created VM of the same name, or another secret', () => {
    const tok = issueToken(secret, a, 60, now);
    expect(verifyToken(secret, b, tok, now)).toBe(false);
    expect(verifyToken(secret, aAgain, tok, now)).toBe(false);
    expect(verifyToken(Buffer.from('s2'), a, tok, now)).toBe(false);
  });

  it('verifies on any replica holding the secret (stateless)', () => {
    const tok = issueToken(Buffer.from('shared'), a, 600, now);
    expect(verifyToken(Buffer.from('shared'), a, tok, now + 1000)).toBe(true);
  });

  it('refuses tampered and malformed tokens', () => {
    const tok = issueToken(secret, a, 60, now);
    const [exp, mac] = tok.split('.');
    expect(verifyToken(secret, a, `${Number(exp) + 3_600_000}.${mac}`, now)).toBe(false);
    expect(verifyToken(secret, a, `${exp}.${mac.slice(0, -1)}${mac.endsWith('A') ? 'B' : 'A'}`, now)).toBe(false);
    for (const bad of ['', '.', tok + 'x', `${exp}`, `x.${mac}`, `${exp}.${mac}.x`, 'a'.repeat(5000)]) expect(verifyToken(secret, a, bad, now), bad.slice(0, 20)).toBe(false);
  });
});
