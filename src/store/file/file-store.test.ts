// The embedded file store: transactions with the same semantics as etcd's, atomic replacement,
// and a source that follows edits made by other processes.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileKv } from './kv.js';
import { FileSource } from './source.js';
import { StoreWriter } from '../writer.js';
import { Keys } from '../keys.js';
import { Registry } from '../../registry/registry.js';
import { silentLogger } from '../../log.js';
import { eventually, ED25519 } from '../../../test/support/store.js';

const dir = mkdtempSync(join(tmpdir(), 'uncloud-file-'));
const closers: (() => Promise<void>)[] = [];
afterAll(async () => { for (const c of closers) await c(); });

describe('FileKv', () => {
  it('round-trips records with revisions and compare-and-swap', async () => {
    const kv = new FileKv(join(dir, 'a.json'));
    expect(await kv.txn({ compares: [{ key: '/k', modRevision: 0 }], puts: [{ key: '/k', value: '{"a":1}' }], deletes: [] })).toEqual({ succeeded: true, revision: 1 });
    expect(await kv.txn({ compares: [{ key: '/k', modRevision: 0 }], puts: [{ key: '/k', value: '{"a":2}' }], deletes: [] })).toEqual({ succeeded: false, revision: 1 });
    const e = await kv.get('/k');
    expect(e).toEqual({ key: '/k', value: '{"a":1}', modRevision: 1, createRevision: 1 });
    await kv.txn({ compares: [{ key: '/k', modRevision: 1 }], puts: [{ key: '/k', value: '{"a":3}' }, { key: '/j', value: 'plain' }], deletes: [] });
    expect(await kv.range('/')).toEqual({
      revision: 2,
      entries: [
        { key: '/j', value: 'plain', modRevision: 2, createRevision: 2 },
        { key: '/k', value: '{"a":3}', modRevision: 2, createRevision: 1 },
      ],
    });
    // human-readable on disk, no temp files left behind
    expect(JSON.parse(readFileSync(join(dir, 'a.json'), 'utf8')).entries['/k'].value).toEqual({ a: 3 });
    expect(readdirSync(dir).filter((f) => f.startsWith('a.json'))).toEqual(['a.json']);
  });

  it('serialises concurrent writers across the lock', async () => {
    const path = join(dir, 'b.json');
    const writer = new StoreWriter(new FileKv(path), new Keys());
    await writer.addNetwork({ name: 'lab', prefix6: '2001:db8:3::/64', domain: 'lab.example', metadata6: '2001:db8:3::1' });
    const vms = await Promise.all(Array.from({ length: 20 }, (_, i) => new StoreWriter(new FileKv(path), new Keys()).addVm({ name: `v${i}`, network: 'lab' })));
    expect(new Set(vms.map((v) => v.mac)).size).toBe(20);
    expect(await writer.listVms()).toHaveLength(20);
  });

  it('refuses a file that is not a state file', async () => {
    const path = join(dir, 'junk.json');
    writeFileSync(path, '{"hello":1}');
    await expect(new FileKv(path).range('/')).rejects.toThrow(/not an uncloud-metadata state file/);
  });
});

describe('FileSource', () => {
  it('follows changes written by another process and keeps the last good state over a broken file', async () => {
    const path = join(dir, 'c.json');
    const writer = new StoreWriter(new FileKv(path), new Keys());
    await writer.addNetwork({ name: 'lab', prefix6: '2001:db8:4::/64', domain: 'lab.example', metadata6: '2001:db8:4::1' });
    const registry = new Registry({ log: silentLogger() });
    const source = new FileSource(path, new Keys().applianceRanges(), silentLogger());
    closers.push(() => source.close());
    await source.start(registry);
    expect(registry.network('lab')).toBeDefined();
    await writer.addUserKey('alice', 'k', ED25519);
    await writer.addVm({ name: 'a', network: 'lab', owner: 'alice' });
    await eventually(() => registry.vmByName('lab', 'a')?.authorizedKeys.length === 1);
    writeFileSync(path, '{ broken');
    await new Promise((r) => setTimeout(r, 100));
    expect(registry.vmByName('lab', 'a')).toBeDefined();
    expect(source.health().lastError).toMatch(/JSON/);
  });
});
