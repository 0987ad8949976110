// `store migrate` on a store written by the last layout-1 version (fixtures/layout1-store.json,
// made by that version's writer: see fixtures/make-layout1-store.mjs), and on one in layout 2 (no
// host network copies): before it, this version refuses to write or serve the store; after it,
// appliances serve owners' keys from their network's copies, agents find launch specs, their
// networks and their reports; nothing of the old store is lost. A run stopped midway is completed
// by the next; a second run writes nothing.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN } from '../../test/support/daemon.js';
import { freePort } from '../../test/support/ports.js';
import { etcdTestStore, uniquePrefix, etcdEndpoint } from '../../test/support/store.js';
import { hostCopiesConsistent, ownerCopiesConsistent } from './scope.test-support.js';
import { migrateStore } from './migrate.js';
import { StoreWriter } from './writer.js';
import { openStore } from './open.js';
import { Keys, LAYOUT } from './keys.js';
import { readState } from './file/kv.js';
import { Registry } from '../registry/registry.js';
import { silentLogger } from '../log.js';

const exec = promisify(execFile);
const FIXTURE = join(import.meta.dirname, 'fixtures/layout1-store.json');
const ALICE = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j alice@laptop';
const dir = mkdtempSync(join(tmpdir(), 'uncloud-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[]) => exec(process.execPath, [BIN, ...args], { env: { ...process.env, UNCLOUD_METADATA_STORE: '' } })
  .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);

/** The fixture's records, and each moved agent report under its new key. */
function expectedAfter(keys: Keys, entries: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(entries)) {
    const k = keys.parse(key);
    if (k?.kind === 'legacy-vm-state') out[keys.vmState((JSON.parse(value) as { host: string }).host, k.parts[0], k.parts[1])] = value;
    else out[key] = value;
  }
  return out;
}

/** The file store keeps JSON values as JSON and others as strings: compare what they mean. */
function json(text: string | undefined): unknown {
  try {
    return JSON.parse(text!);
  } catch {
    return text;
  }
}

function fixtureEntries(prefix = '/uncloud'): Record<string, string> {
  const state = readState(FIXTURE);
  return Object.fromEntries(Object.entries(state.entries).map(([k, e]) => [prefix + k.slice('/uncloud'.length), typeof e.value === 'string' ? e.value : JSON.stringify(e.value)]));
}

describe('store migrate on a file store written by layout 1', () => {
  const path = join(dir, 'state.json');
  copyFileSync(FIXTURE, path);
  const store = `file:${path}`;

  it('before it: a write is refused in one line and changes nothing; serve refuses to start', async () => {
    const before = readFileSync(path, 'utf8');
    const r = await cli(['vm', 'set', 'web1', '--network', 'lab', '--meta', 'x=y', '--store', store]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/layout 1: run `uncloud-metadata store migrate` first/);
    expect(readFileSync(path, 'utf8')).toBe(before);
    const [dns, http, admin] = await Promise.all([freePort(), freePort(), freePort()]);
    const s = await cli(['serve', '--store', store, '--network', 'lab', '--dns', `[::1]:${dns}`, '--http', `[::1]:${http}`, '--admin', `[::1]:${admin}`]);
    expect(s.code).not.toBe(0);
    expect(s.stderr.trim().split('\n').filter((l) => l.startsWith('error:'))).toEqual([expect.stringMatching(/^error: store at \/uncloud\/ is in layout 1: run `uncloud-metadata store migrate`/)]);
  });

  it('migrates, keeps every record, moves agent reports, and a second run writes nothing', async () => {
    const r = await cli(['store', 'migrate', '--store', store]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/layout 1 -> 3; 3 network\(s\), 72 VM\(s\), 3 agent report\(s\) moved; \d+ record\(s\) written/);
    const keys = new Keys();
    const after = Object.fromEntries(Object.entries(readState(path).entries).map(([k, e]) => [k, typeof e.value === 'string' ? e.value : JSON.stringify(e.value)]));
    for (const [key, value] of Object.entries(expectedAfter(keys, fixtureEntries()))) expect(json(after[key]), key).toEqual(json(value));
    expect(Object.keys(after).filter((k) => keys.parse(k)?.kind === 'legacy-vm-state')).toEqual([]);
    const { kv } = openStore(store);
    expect(await ownerCopiesConsistent(kv, keys)).toEqual([]);
    expect(await hostCopiesConsistent(kv, keys)).toEqual([]);
    // Every VM with a host has its launch spec there, without user-data.
    const launch = JSON.parse(after[keys.launch('hv1', 'prod', 'db1')]) as Record<string, unknown>;
    expect(launch).toMatchObject({ name: 'db1', network: 'prod', host: 'hv1', mac: '52:54:00:02:00:01', addresses: ['10.2.0.10', '2001:db8:2::10'] });
    expect(launch.userData).toBeUndefined();
    expect(Object.keys(after).filter((k) => keys.parse(k)?.kind === 'launch')).toHaveLength(71);
    expect(JSON.parse(after[keys.layout])).toEqual({ v: LAYOUT });

    const again = await cli(['store', 'migrate', '--store', store]);
    expect(again.stdout).toMatch(/layout 3 -> 3; .* nothing to do/);
    expect(Object.keys(readState(path).entries).length).toBe(Object.keys(after).length);
  });

  it('after it: an appliance of one network serves its owners\' keys, and writes work again', async () => {
    const { source } = openStore(store);
    const registry = new Registry({ networks: ['lab'], log: silentLogger() });
    const src = source(silentLogger(), new Keys().applianceRanges(['lab']));
    await src.start(registry);
    expect(registry.vmCount).toBe(70);
    expect(registry.vmByName('lab', 'web1')?.authorizedKeys).toEqual([ALICE]);
    expect(registry.vmByName('prod', 'db1')).toBeUndefined();
    await src.close();
    const r = await cli(['vm', 'set', 'web1', '--network', 'lab', '--meta', 'x=y', '--store', store]);
    expect(r.stderr).toBe('');
  });
});

describe('store migrate on etcd, stopped midway and run again', () => {
  async function load(prefix: string): Promise<void> {
    const t = openStore(`etcd://${etcdEndpoint()}`, { prefix });
    const entries = Object.entries(fixtureEntries(prefix));
    for (let i = 0; i < entries.length; i += 100) {
      await t.kv.txn({ compares: [], deletes: [], puts: entries.slice(i, i + 100).map(([key, value]) => ({ key, value })) });
    }
    await t.kv.close();
  }
  async function dump(prefix: string): Promise<Record<string, string>> {
    const t = openStore(`etcd://${etcdEndpoint()}`, { prefix });
    const { entries } = await t.kv.range(`${prefix}/`);
    await t.kv.close();
    return Object.fromEntries(entries.map((e) => [e.key.slice(prefix.length), e.value]));
  }

  it('completes what a killed run left, to the same store a single run makes', async () => {
    const once = uniquePrefix();
    const twice = uniquePrefix();
    await load(once);
    await load(twice);
    const a = openStore(`etcd://${etcdEndpoint()}`, { prefix: once });
    const b = openStore(`etcd://${etcdEndpoint()}`, { prefix: twice });
    try {
      const single = await migrateStore(a.kv, a.keys);
      expect(single).toMatchObject({ from: 1, vms: 72, movedStates: 3, skipped: [] });

      // "Killed" after the first batch: no marker yet, so appliances still refuse it.
      let batches = 0;
      await expect(migrateStore(b.kv, b.keys, { onBatch: () => { if (++batches === 1) throw new Error('killed'); } })).rejects.toThrow('killed');
      expect(await b.kv.get(b.keys.layout)).toBeUndefined();
      expect(await ownerCopiesConsistent(b.kv, b.keys)).not.toEqual([]);
      const resumed = await migrateStore(b.kv, b.keys);
      expect(resumed.written).toBeGreaterThan(0);
      expect(resumed.written).toBeLessThan(single.written);
      expect(await dump(twice)).toEqual(await dump(once));
      expect(await ownerCopiesConsistent(b.kv, b.keys)).toEqual([]);
      expect(await hostCopiesConsistent(b.kv, b.keys)).toEqual([]);
      expect((await migrateStore(b.kv, b.keys)).written).toBe(0);
    } finally {
      await a.kv.close();
      await b.kv.close();
    }
  });

  it('a VM changed while the run is under way is migrated from its new record', async () => {
    const prefix = uniquePrefix();
    await load(prefix);
    const s = openStore(`etcd://${etcdEndpoint()}`, { prefix });
    try {
      // A VM of a later batch moves to another host (a writer of the old version) after the first batch.
      const lab = (await s.kv.range(s.keys.vmsOf('lab'))).entries;
      const late = lab[lab.length - 1];
      const moved: Record<string, unknown> = { ...(JSON.parse(late.value) as Record<string, unknown>), host: 'hv9' };
      let batches = 0;
      await migrateStore(s.kv, s.keys, {
        onBatch: () => {
          if (++batches === 1) void s.kv.txn({ compares: [], deletes: [], puts: [{ key: late.key, value: JSON.stringify(moved) }] });
        },
      });
      const name = moved.name as string;
      expect(JSON.parse((await s.kv.get(s.keys.launch('hv9', 'lab', name)))!.value)).toMatchObject({ name, host: 'hv9' });
      expect(await ownerCopiesConsistent(s.kv, s.keys)).toEqual([]);
    } finally {
      await s.kv.close();
    }
  });

  it('refuses a store from a newer layout', async () => {
    const t = etcdTestStore();
    await t.store.kv.txn({ compares: [], deletes: [], puts: [{ key: t.store.keys.layout, value: '{"v":4}' }] });
    await expect(migrateStore(t.store.kv, t.store.keys)).rejects.toThrow(/layout \{"v":4\}; this version knows layouts up to 3/);
    await t.close();
  });
});

describe('store migrate on a store in layout 2 (agents read every network record)', () => {
  it('gives each host the copies of its networks: the same store this version\'s writer makes', async () => {
    const t = etcdTestStore();
    try {
      const net = (name: string, n: number, extra: Record<string, unknown> = {}) => ({ name, prefix6: `2001:db8:${n}::/64`, domain: `${name}.example`, metadata6: `2001:db8:${n}::1`, ...extra });
      await t.writer.addNetwork(net('lab', 1, { forwardTo: ['db'] }));
      await t.writer.addNetwork(net('db', 2, { prefix4: '10.2.0.0/24' }));
      for (let i = 0; i < 60; i++) await t.writer.addVm({ name: `v${i}`, network: i % 3 ? 'lab' : 'db', host: `hv${i % 4}` });
      await t.writer.addVm({ name: 'nowhere', network: 'lab' });
      await t.writer.addVm({ name: 'lonely', network: 'lab', host: 'hv9' }); // its record goes bad below
      const broken = t.store.keys.vm('lab', 'lonely');
      const made = (await t.store.kv.range(t.store.keys.root)).entries.map((e) => [e.key, e.key === broken ? '{"v":1,"broken":true}' : e.value]);
      // What layout 2 had: no host copies, no placed/ markers.
      const layout2 = made.filter(([k]) => !['host-network', 'placed'].includes(t.store.keys.parse(k)?.kind ?? ''));
      expect(made.length - layout2.length).toBe(2 * 9); // hv0-3 x 2 networks and hv9 x lab, a copy and a marker each
      await t.store.kv.txn({
        compares: [], deletes: made.filter((e) => !layout2.includes(e)).map(([k]) => k),
        puts: [{ key: t.store.keys.layout, value: '{"v":2}' }, { key: broken, value: '{"v":1,"broken":true}' }],
      });
      await expect(new StoreWriter(t.store.kv, t.store.keys).addVm({ name: 'late', network: 'lab', host: 'hv1' })).rejects.toThrow(/has layout 2; this version writes layout 3/);

      const report = await migrateStore(t.store.kv, t.store.keys);
      // The VM whose record is unreadable is named, and its host still gets the copy its agent
      // needs for the launch spec that is there (without it, the agent would stop that VM).
      expect(report).toMatchObject({ from: 2, vms: 62, written: 2 * 9 + 1, skipped: [broken] });
      const after = (await t.store.kv.range(t.store.keys.root)).entries.map((e) => [e.key, e.value]);
      expect(after.sort()).toEqual(made.sort());
      expect(await hostCopiesConsistent(t.store.kv, t.store.keys)).toEqual([]);
      expect((await migrateStore(t.store.kv, t.store.keys)).written).toBe(0);
    } finally {
      await t.close();
    }
  });
});
