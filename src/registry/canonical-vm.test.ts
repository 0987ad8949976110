import { describe, expect, it } from 'vitest';
import { VmSchema } from '../model/schema.js';
import { canonicalVm } from './canonical-vm.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j alice@laptop';
const full = VmSchema.parse({
  v: 1, id: '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f', name: 'web-1', network: 'lab', owner: 'alice', mac: '52:54:00:12:34:56',
  addresses: ['2001:db8::10', '192.0.2.10'], host: 'hv1.example', resources: { memoryMiB: 1024, cpus: 2, kernel: '/k', initrd: '/i', cmdline: 'quiet' },
  userData: '#cloud-config\n', vendorData: 'x', meta: { role: 'web', 'a.b': '' }, sshKeys: [KEY], requireToken: true, createdAt: '2024-01-01T00:00:00Z',
});
// Binary user-data and vendor-data: kept as base64 (gzip's magic is not UTF-8).
const binary = VmSchema.parse({
  v: 1, id: '00000000-0000-4000-8000-000000000002', name: 'b', network: 'n', mac: '02:00:00:00:00:02', createdAt: 'x',
  userDataBase64: 'H4sIAAAAAAAAA+MCAJMG1zIDAAAA', vendorDataBase64: '/w==',
});
const minimal = VmSchema.parse({ v: 1, id: '00000000-0000-4000-8000-000000000001', name: 'a', network: 'n', mac: '02:00:00:00:00:01', createdAt: 'x' });

// Each mutation returns a changed deep copy; many are invalid, some valid but not canonical.
const values: unknown[] = [
  undefined, null, 0, 1, 2, -1, 15, 16, 513, 1.5, '', ' ', 'x', 'UPPER', 'a-', '-a', 'a'.repeat(64), true, false, [], {}, ['x'], [''],
  '52:54:00:12:34:56', '52-54-00-12-34-56', '525400123456', '52:54:00:12:34:5G', '53:54:00:12:34:56', '52:54:00:12:34:56 ', 'AA:BB:CC:DD:EE:FF',
  ['2001:DB8::10'], ['2001:db8:0::10'], ['::ffff:192.0.2.1'], ['192.0.2.010'], ['fe80::1%eth0'], ['[2001:db8::1]'], ['2001:db8::1', '10.0.0.1'],
  { memoryMiB: 512, cpus: 1 }, { cpus: 1, memoryMiB: 512 }, { memoryMiB: 512 }, { memoryMiB: 512, cpus: 1, disk: 'd', kernel: 'k' },
  { memoryMiB: 512, cpus: 1, initrd: 'i' }, { memoryMiB: 512, cpus: 1, disk: '' }, { memoryMiB: 512, cpus: 1, extra: 1 },
  { role: 'x' }, { 'bad key': 'x' }, { k: 1 }, { k: 'x'.repeat(4097) }, JSON.parse('{"__proto__":"x"}'),
  [KEY], [`${KEY}  `], [KEY.replace(' alice', '  alice')], ['ssh-rsa AAAA'], [KEY.toUpperCase()],
  '3f1c2d4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f', '3F1C2D4E-5A6B-4C7D-8E9F-0A1B2C3D4E5F', '3f1c2d4e-5a6b-9c7d-8e9f-0a1b2c3d4e5f',
  // base64: canonical, spare bits set, unpadded, URL alphabet, whitespace, padding only
  'AA==', '/w==', '/x==', 'QQ', 'QUJD', 'QUJ', '_w==', 'QU JD', '====', 'QUJD\n', 'A'.repeat(1_398_100) + 'AA==', 'A'.repeat(1_398_104), 'A'.repeat(1_398_108),
];

function* mutations(base: Record<string, unknown>): Generator<unknown> {
  const clone = () => JSON.parse(JSON.stringify(base)) as Record<string, unknown>;
  yield clone();
  const keys = Object.keys(base);
  for (const k of [...keys, 'extra', 'owner', 'host', 'userData', 'vendorData', 'userDataBase64', 'vendorDataBase64']) {
    for (const v of values) {
      const c = clone();
      if (v === undefined) delete c[k];
      else c[k] = JSON.parse(JSON.stringify(v));
      yield c;
    }
  }
  for (let i = 0; i + 1 < keys.length; i++) {
    const order = [...keys];
    [order[i], order[i + 1]] = [order[i + 1], order[i]];
    const c = clone();
    yield Object.fromEntries(order.map((k) => [k, c[k]]));
  }
  yield null;
  yield [];
  yield 'vm';
  yield Object.assign(Object.create(null), clone());
}

describe('canonicalVm', () => {
  it('accepts only what VmSchema accepts, and returns exactly its output', () => {
    let accepted = 0, total = 0;
    for (const base of [full, minimal, binary]) {
      for (const m of mutations(base as Record<string, unknown>)) {
        total++;
        const fast = canonicalVm(m);
        const zod = VmSchema.safeParse(m);
        if (!fast) continue;
        accepted++;
        expect(zod.success, JSON.stringify(m)).toBe(true);
        expect(JSON.stringify(fast)).toBe(JSON.stringify(zod.data));
        expect(fast).toStrictEqual(zod.data);
      }
    }
    expect(canonicalVm(full)).toBe(full);
    expect(canonicalVm(minimal)).toBe(minimal);
    expect(canonicalVm(binary)).toBe(binary);
    expect(total).toBeGreaterThan(1000);
    // Valid but non-canonical records exist among the mutations and go to the schema instead.
    expect(accepted).toBeGreaterThan(20);
    expect(accepted).toBeLessThan(total / 4);
  });
});
