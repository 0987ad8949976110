// User-data and vendor-data through the writer on a real etcd: bytes in, the lossless stored
// form out, the byte limit before any write, and records written before byte support still read
// and editable.
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../test/support/store.js';
import { StoreError } from './errors.js';
import { dataBytes } from '../model/user-data.js';

const t = etcdTestStore();
beforeAll(() => t.writer.addNetwork({ name: 'd', prefix6: '2001:db8:d::/64', domain: 'd.example', metadata6: '2001:db8:d::1' }));
afterAll(() => t.close());

const GZ = gzipSync('#cloud-config\n');
const stored = async (name: string) => JSON.parse((await t.store.kv.get(t.store.keys.vm('d', name)))!.value) as Record<string, unknown>;

describe('StoreWriter: user-data and vendor-data', () => {
  it('stores bytes as base64 only when they are not UTF-8, and a string as its UTF-8 text', async () => {
    await t.writer.addVm({ name: 'a', network: 'd', userData: GZ, vendorData: Buffer.from('#cloud-config\n') });
    expect(await stored('a')).toMatchObject({ userDataBase64: GZ.toString('base64'), vendorData: '#cloud-config\n' });
    expect(await stored('a')).not.toHaveProperty('userData');
    const vm = await t.writer.setVm('a', 'd', { userData: '#!/bin/sh\n', vendorData: GZ });
    expect(dataBytes(vm, 'userData')!.toString()).toBe('#!/bin/sh\n');
    const rec = await stored('a');
    expect(Object.keys(rec).filter((k) => /Data/.test(k))).toEqual(['userData', 'vendorDataBase64']);
  });

  it('refuses more than 1 MiB (in bytes, not characters) before writing', async () => {
    const before = (await t.store.kv.get(t.store.keys.vm('d', 'a')))!.modRevision;
    const err = await t.writer.setVm('a', 'd', { userData: 'é'.repeat(512 * 1024 + 1) }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).message).toBe('user-data is 1048578 bytes; at most 1048576 are allowed');
    expect(await t.writer.addVm({ name: 'big', network: 'd', vendorData: Buffer.alloc(1024 * 1024 + 1) }).catch((e: StoreError) => e.code)).toBe('invalid');
    expect((await t.store.kv.get(t.store.keys.vm('d', 'a')))!.modRevision).toBe(before);
    expect(await t.store.kv.get(t.store.keys.vm('d', 'big'))).toBeUndefined();
  });

  it('a record written before byte support (text over 1 MiB of bytes, under 1 Mi characters) is still read and can be edited', async () => {
    await t.writer.addVm({ name: 'old', network: 'd', mac: '02:00:00:00:0d:01' });
    const rec = await stored('old');
    const old = { ...rec, userData: 'é'.repeat(600 * 1024) };
    await t.store.kv.txn({ compares: [], puts: [{ key: t.store.keys.vm('d', 'old'), value: JSON.stringify(old) }], deletes: [] });
    const vm = await t.writer.setVm('old', 'd', { resources: { cpus: 2 } });
    expect(vm.userData).toBe(old.userData);
    expect(vm.resources.cpus).toBe(2);
  });
});
