// vendor_data.json's string for vendor-data bytes: cloud-init's own user-data processor (Debian's
// cloud-init, Python) makes the same parts of it as of the raw bytes, for text, gzip, gzipped
// multipart, bytes that are not UTF-8 (plain and gzipped) and a broken gzip.
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { vendorDataString } from './mime.js';
import { python } from '../testing/clients.js';

const LATIN1_SCRIPT = Buffer.from('#!/bin/sh\necho caf\xe9 > /run/x\n', 'latin1');
const MULTIPART = Buffer.from('Content-Type: multipart/mixed; boundary="b"\r\nMIME-Version: 1.0\r\n\r\n--b\r\nContent-Type: text/cloud-config\r\n\r\n#cloud-config\r\n{}\r\n--b\r\nContent-Type: text/x-shellscript\r\n\r\n#!/bin/sh\r\necho hi\r\n--b--\r\n');
const CASES: [string, Buffer][] = [
  ['UTF-8 text', Buffer.from('#cloud-config\npackages: [htop]\n# ünïcödé\n')],
  ['gzip', gzipSync('#cloud-config\nruncmd: [[echo, gz]]\n')],
  ['gzipped multipart', gzipSync(MULTIPART)],
  ['not UTF-8', LATIN1_SCRIPT],
  ['gzipped, not UTF-8 inside', gzipSync(LATIN1_SCRIPT)],
  ['a gzip that does not inflate', Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), Buffer.from('#!/bin/sh\n\xff\n', 'latin1')])],
];

describe('vendorDataString', () => {
  it('is a JSON-safe string that renders the same every time', () => {
    for (const [, bytes] of CASES) {
      const s = vendorDataString(bytes);
      expect(JSON.parse(JSON.stringify(s))).toBe(s);
      expect(vendorDataString(bytes)).toBe(s);
    }
  });

  it('does not inflate a gzip bomb from the store past 16 MiB (it goes as the raw bytes in base64)', () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(100 * 1024);
    const s = vendorDataString(bomb);
    expect(s.length).toBeLessThan(bomb.length * 2);
    expect(s).toContain('Content-Transfer-Encoding: base64');
    const body = s.split('\n\n')[2].split('\n--')[0];
    expect(Buffer.from(body.replace(/\n/g, ''), 'base64').equals(bomb)).toBe(true);
  });

  it("cloud-init's UserDataProcessor makes the same parts of it as of the raw bytes", async () => {
    const input = CASES.map(([what, bytes]) => ({ what, raw: bytes.toString('base64'), wrapped: vendorDataString(bytes) }));
    const out = await python(`
import base64, json, sys, tempfile, logging
logging.disable(logging.CRITICAL)
from cloudinit import user_data, helpers, util
def b64(v):
    return base64.b64encode(v if isinstance(v, bytes) else v.encode('utf-8', 'surrogateescape')).decode()
def parts(blob):
    p = user_data.UserDataProcessor(helpers.Paths({'cloud_dir': tempfile.mkdtemp()}))
    return [[m.get_content_type(), b64(util.fully_decoded_payload(m))] for m in p.process(blob).walk() if not m.is_multipart()]
print(json.dumps([{'what': c['what'], 'raw': parts(base64.b64decode(c['raw'])), 'wrapped': parts(c['wrapped'])} for c in json.loads(sys.argv[1])]))
`, [JSON.stringify(input)]) as { what: string; raw: unknown[]; wrapped: unknown[] }[];
    expect(out).toHaveLength(CASES.length);
    for (const c of out) {
      expect(c.raw.length, c.what).toBeGreaterThan(0);
      expect(c.wrapped, c.what).toEqual(c.raw);
    }
  });
});
