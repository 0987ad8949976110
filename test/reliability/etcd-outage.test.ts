// The store goes away, freezes, compacts and rewinds under a running daemon (the built binary,
// on an etcd of our own): guests keep getting answers from memory, and once etcd is back the
// daemon ends up with exactly etcd's state, without a restart.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type OpenedStore } from '../../src/store/open.js';
import { StoreWriter } from '../../src/store/writer.js';
import { eui64Address } from '../../src/model/eui64.js';
import { parsePrefix } from '../../src/model/ip.js';
import type { Vm } from '../../src/model/schema.js';
import { aaaa, figure, httpGet, OwnEtcd, sleep, startDaemon, within, type Daemon } from './support.js';

const PREFIX = '/rel-outage';
const NET = { name: 'loop', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'loop.test', metadata6: '::2', metadata4: '127.0.0.2' };
const P6 = parsePrefix(NET.prefix6, 6)!;
/** How long etcd stays dead in the outage scenario (seconds). */
const OUTAGE_SECONDS = Number(process.env.OUTAGE_SECONDS ?? 6);

describe('etcd outages, freezes, compaction and rewinds', () => {
  let etcd: OwnEtcd;
  let store: OpenedStore;
  let writer: StoreWriter;
  let d: Daemon;
  let stopping = false;
  /** Every VM name ever used here: each must resolve exactly as etcd says (or NXDOMAIN). */
  const names = new Set<string>();
  let seq = 0;

  const addVms = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const name = `vm${++seq}`;
      names.add(name);
      await writer.addVm({ name, network: 'loop' });
    }
  };

  /** Differences between what the daemon answers and what etcd holds now; empty when equal. */
  const diff = async (known?: Vm[]): Promise<string[]> => {
    const vms = new Map((known ?? await writer.listVms('loop')).map((v) => [v.name, v]));
    const r = d.resolver();
    const out: string[] = [];
    await Promise.all([...names].map(async (name) => {
      const vm = vms.get(name);
      const want = vm ? [eui64Address(P6, vm.mac), ...vm.addresses.filter((a) => a.includes(':'))].sort() : 'NXDOMAIN';
      const got = await aaaa(r, `${name}.loop.test`);
      if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`${name}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    }));
    const self = vms.get('self');
    const inst = JSON.parse((await httpGet(`http://[::1]:${d.httpPort}/instance`)).body);
    if (JSON.stringify(inst.meta) !== JSON.stringify(self?.meta)) out.push(`self meta: ${JSON.stringify(inst.meta)} != ${JSON.stringify(self?.meta)}`);
    const ready = await d.readyz();
    if (ready.vms !== vms.size) out.push(`vms: ${ready.vms} != ${vms.size}`);
    return out;
  };

  /** Churn while the daemon cannot see it: adds, removals, MAC changes and a meta change. */
  const churn = async (tag: string) => {
    await addVms(15);
    const vms = (await writer.listVms('loop')).filter((v) => v.name !== 'self');
    for (const v of vms.slice(0, 5)) await writer.removeVm(v.name, 'loop');
    for (const v of vms.slice(5, 10)) await writer.setVm(v.name, 'loop', { mac: undefined, meta: { moved: tag } });
    for (const v of vms.slice(10, 15)) {
      await writer.removeVm(v.name, 'loop');
      await writer.addVm({ name: v.name, network: 'loop' }); // same name, new MAC
    }
    await writer.setVm('self', 'loop', (cur) => ({ meta: { ...cur.meta, tag } }));
  };

  beforeAll(async () => {
    etcd = await OwnEtcd.start();
    store = openStore(etcd.url, { prefix: PREFIX });
    writer = new StoreWriter(store.kv, store.keys);
    await writer.addNetwork(NET);
    await writer.addVm({ name: 'self', network: 'loop', addresses: ['::1', '127.0.0.1'], meta: { tag: 'start' } });
    names.add('self');
    await addVms(40);
    d = await startDaemon(etcd.url, PREFIX, ['--log-level', 'info']);
    // The daemon must outlive every test here; if it does not, say how it ended and what it said last.
    d.run.proc.once('exit', (code, signal) => {
      if (!stopping) process.stderr.write(`etcd-outage: serve exited (code ${code}, signal ${signal}); its last output:\n${d.run.output().slice(-4000)}\n`);
    });
    expect(await diff()).toEqual([]);
  }, 60_000);

  afterAll(async () => {
    stopping = true;
    await d?.run.stop('SIGKILL');
    await store?.kv.close();
    await etcd?.close();
  });

  it('etcd killed: every known name and VM keeps answering, /readyz says degraded; etcd back: changes flow without a restart', async () => {
    expect((await d.readyz()).status).toBe('ready');
    const known = await writer.listVms('loop');
    const t0 = Date.now();
    await etcd.kill();
    const degradedAfterMs = await within(15_000, async () => (await d.readyz()).status === 'degraded', 'readyz degraded');
    let rounds = 0;
    let answers = 0;
    const failures: string[] = [];
    while (Date.now() - t0 < OUTAGE_SECONDS * 1000) {
      const problems = await diff(known);
      failures.push(...problems);
      answers += names.size + 1;
      rounds++;
      const ready = await d.readyz();
      if (ready.status !== 'degraded') failures.push(`readyz ${ready.status}`);
    }
    expect(failures).toEqual([]);
    expect(d.run.proc.exitCode).toBeNull();

    await etcd.up();
    const back = Date.now();
    const upRevision = (await etcd.status()).revision;
    // The operator's first write may race the client's reconnect: retry it as the CLI user would.
    const writeAcceptedMs = await within(10_000, async () => { await writer.addVm({ name: 'after-outage', network: 'loop' }); return true; }, 'write after etcd is back');
    names.add('after-outage');
    // "ready" again only once the daemon has reloaded from the store that came back (never while it
    // still serves the state from before the outage). The reload may read just before the write
    // below lands; the write then arrives through the watch, which `visibleMs` checks.
    let readyAt: { revision: number } | undefined;
    const readyMs = await within(15_000, async () => {
      const r = await d.readyz();
      if (r.status === 'ready') readyAt = r;
      return r.status === 'ready';
    }, 'readyz ready');
    expect(readyAt!.revision).toBeGreaterThanOrEqual(upRevision);
    const visibleMs = await within(15_000, async () => Array.isArray(await aaaa(d.resolver(), 'after-outage.loop.test')), 'new VM visible');
    expect(await diff()).toEqual([]);
    figure('etcd-killed', {
      outageSeconds: OUTAGE_SECONDS, degradedAfterMs, rounds, answersDuringOutage: answers, failures: failures.length,
      writeAcceptedAfterEtcdBackMs: writeAcceptedMs, changeVisibleAfterWriteMs: visibleMs, readyAgainMs: readyMs, sinceBackMs: Date.now() - back,
    });
  }, 90_000);

  it('daemon frozen (SIGSTOP) while changes land and the revision is compacted, then thawed: converges to exactly etcd', async () => {
    d.run.proc.kill('SIGSTOP');
    try {
      await churn('frozen');
      const { revision } = await etcd.status();
      await etcd.etcdctl('compact', String(revision));
    } finally {
      d.run.proc.kill('SIGCONT');
    }
    const convergedMs = await within(15_000, async () => (await diff()).length === 0, 'converged after thaw');
    const { revision } = await etcd.status();
    expect((await d.readyz()).revision).toBe(revision);
    figure('sigstop-compaction', { convergedMs, revision, vms: (await d.readyz()).vms });
  }, 60_000);

  it('frozen across compaction and an etcd restart: the resumed watch is refused as compacted, the daemon reloads and converges', async () => {
    const reloadsBefore = (d.run.output().match(/reloading/g) ?? []).length;
    d.run.proc.kill('SIGSTOP');
    try {
      // etcd dies first, so nothing of the churn sits in the frozen daemon's socket buffers.
      await etcd.kill();
      await etcd.up();
      await within(10_000, async () => { await churn('frozen-restart'); return true; }, 'churn after restart');
      const { revision } = await etcd.status();
      await etcd.etcdctl('compact', String(revision));
    } finally {
      d.run.proc.kill('SIGCONT');
    }
    const convergedMs = await within(20_000, async () => (await diff()).length === 0, 'converged after thaw and restart');
    const reloads = (d.run.output().match(/reloading/g) ?? []).length - reloadsBefore;
    expect(reloads).toBeGreaterThanOrEqual(1);
    figure('sigstop-compaction-restart', { convergedMs, compactionReloads: reloads });
  }, 60_000);

  it('etcd restored from a snapshot at an older revision: detected, fully reloaded, and writes made after the restore are not lost', async () => {
    const snap = await etcd.snapshot();
    const atSnapshot = await etcd.status();
    await churn('after-snapshot');
    const beforeRestore = await etcd.status();
    await within(10_000, async () => (await d.readyz()).revision === beforeRestore.revision, 'daemon caught up before the restore');

    const reloadsBefore = (d.run.output().match(/reloading/g) ?? []).length;
    await etcd.restore(snap);
    const afterRestore = await etcd.status();
    // The restored store moves on at once (operators, agents) and its revision overtakes the
    // one the daemon had seen.
    await within(10_000, async () => { await writer.setVm('self', 'loop', (cur) => ({ meta: { ...cur.meta, restored: 'yes' } })); return true; }, 'first write after restore');
    while ((await etcd.status()).revision <= beforeRestore.revision + 2) await addVms(1);
    const convergedMs = await within(20_000, async () => (await diff()).length === 0, 'converged after restore');
    expect((d.run.output().match(/reloading/g) ?? []).length).toBeGreaterThan(reloadsBefore);
    await sleep(500);
    expect(await diff()).toEqual([]);
    figure('snapshot-restore', {
      snapshotRevision: atSnapshot.revision, revisionBeforeRestore: beforeRestore.revision, revisionAfterRestore: afterRestore.revision,
      clusterIdChanged: atSnapshot.clusterId !== afterRestore.clusterId, memberIdChanged: atSnapshot.memberId !== afterRestore.memberId,
      raftTermBefore: beforeRestore.raftTerm, raftTermAfter: afterRestore.raftTerm, convergedMs,
    });
  }, 90_000);

  it('restored from a snapshot while the daemon was frozen, and overtaken before it woke: still detected and reloaded', async () => {
    const snap = await etcd.snapshot();
    await churn('before-frozen-restore');
    const beforeRestore = await etcd.status();
    await within(10_000, async () => (await d.readyz()).revision === beforeRestore.revision, 'daemon caught up before the restore');
    const rewindsBefore = (d.run.output().match(/reloading/g) ?? []).length;
    d.run.proc.kill('SIGSTOP');
    let overtaken;
    try {
      await etcd.restore(snap);
      await within(10_000, async () => { await writer.setVm('self', 'loop', (cur) => ({ meta: { ...cur.meta, frozenRestore: 'yes' } })); return true; }, 'first write after restore');
      while ((await etcd.status()).revision <= beforeRestore.revision + 2) await addVms(1);
      overtaken = await etcd.status();
    } finally {
      d.run.proc.kill('SIGCONT');
    }
    const convergedMs = await within(20_000, async () => (await diff()).length === 0, 'converged after a restore it slept through');
    expect((d.run.output().match(/reloading/g) ?? []).length).toBeGreaterThan(rewindsBefore);
    figure('snapshot-restore-while-frozen', { revisionBeforeRestore: beforeRestore.revision, revisionWhenThawed: overtaken.revision, convergedMs });
  }, 90_000);
});
