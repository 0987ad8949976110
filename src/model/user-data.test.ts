import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { MAX_DATA_BYTES, dataBytes, encodeData, isBinaryData, isCanonicalBase64 } from './user-data.js';
import { VmSchema, describeIssues } from './schema.js';

const vm = { v: 1, id: '00000000-0000-4000-8000-000000000001', name: 'a', network: 'n', mac: '02:00:00:00:00:01', createdAt: 'x' };

describe('user-data bytes', () => {
  it('keeps UTF-8 as text (BOM, CRLF, NUL and all) and everything else as base64, both losslessly', () => {
    const cases: [Buffer, 'text' | 'base64'][] = [
      [Buffer.from(''), 'text'],
      [Buffer.from('\ufeff#cloud-config\r\n\u0000 café 🙂\n'), 'text'],
      [gzipSync('#cloud-config\n'), 'base64'],
      [Buffer.from([0xc0, 0xaf]), 'base64'], // overlong '/'
      [Buffer.from([0xed, 0xa0, 0x80]), 'base64'], // a UTF-16 surrogate
      [Buffer.from([0xe2, 0x82]), 'base64'], // truncated
      [Buffer.from('abc\xff', 'latin1'), 'base64'],
    ];
    for (const [bytes, form] of cases) {
      const stored = encodeData(bytes);
      expect(Object.keys(stored), bytes.toString('hex')).toEqual([form]);
      const record = VmSchema.parse({ ...vm, ...('text' in stored ? { userData: stored.text } : { userDataBase64: stored.base64 }) });
      // Through JSON, as the store keeps it.
      const back = VmSchema.parse(JSON.parse(JSON.stringify(record)));
      expect(dataBytes(back, 'userData')!.equals(bytes), bytes.toString('hex')).toBe(true);
      expect(isBinaryData(back, 'userData')).toBe(form === 'base64');
    }
  });

  it('accepts only canonical padded base64 within the limit', () => {
    for (const ok of ['', 'AA==', '/w==', 'QUJD', 'QUI=', 'A'.repeat(1_398_100) + 'AA==']) expect(isCanonicalBase64(ok), ok.slice(0, 10)).toBe(true);
    for (const bad of ['A', 'AA', 'AA=', 'AB==', 'QUK=', '_w==', '-w==', 'QU JD', 'QUJD\n', '====', 'A'.repeat(1_398_104)]) {
      expect(isCanonicalBase64(bad), bad.slice(0, 10)).toBe(false);
    }
    expect(Buffer.from('A'.repeat(1_398_100) + 'AA==', 'base64').length).toBe(MAX_DATA_BYTES);
  });

  it('a record holds each as text or as base64, never both', () => {
    const r = VmSchema.safeParse({ ...vm, vendorData: 'x', vendorDataBase64: '/w==' });
    expect(r.success).toBe(false);
    expect(describeIssues(r.error!)).toBe('vendorDataBase64: a VM holds vendorData as text or as base64, not both');
    expect(VmSchema.safeParse({ ...vm, userData: 'x', vendorDataBase64: '/w==' }).success).toBe(true);
    expect(VmSchema.safeParse({ ...vm, userDataBase64: 'AB==' }).success).toBe(false);
  });
});
