// `store migrate`: brings a store written in layout 1 or 2 to layout 3 (keys.ts). Additive and
// idempotent: every VM gets its owner reference, its owner's key copy in its network and its
// launch spec; every host with a launch spec gets the copy of that network (with the placed/
// marker); each agent report moves from vm-state/ to its host's range; the layout marker is
// written last. Each batch commits only if what it read did not change meanwhile, so a run killed
// at any point leaves a store the next run completes, and a second run over a finished store
// writes nothing.
import type { Kv, KvCompare, KvEntry } from './kv.js';
import { LAYOUT, type Keys } from './keys.js';
import { hostNetworkCopy, launchSpec } from './derived.js';
import { StoreError } from './errors.js';
import { parseJson } from './json.js';
import { NetworkSchema, UserSchema, VmSchema, VmStateSchema, type Network } from '../model/schema.js';

/** etcd's default --max-txn-ops is 128 (compares and puts count separately). */
const TXN_OPS = 120;
const ATTEMPTS = 16;

export interface MigrateReport {
  /** The layout the store said it was in before this run (1: no marker). */
  from: number;
  vms: number;
  networks: number;
  /** Records written or deleted by this run (0 on a finished store). */
  written: number;
  movedStates: number;
  /** Records left alone because they do not parse (named so an operator can look). */
  skipped: string[];
}

export interface MigrateOptions {
  /** Called after each committed batch (progress; tests stop a run here to resume it). */
  onBatch?: (done: { vms: number; written: number }) => void;
}

interface Batch { compares: KvCompare[]; puts: { key: string; value: string }[]; deletes: string[] }
/** A network's copy on its hosts, with what must not have changed for it to be right. */
interface HostCopy { compares: KvCompare[]; value: string }

export async function migrateStore(kv: Kv, keys: Keys, opts: MigrateOptions = {}): Promise<MigrateReport> {
  const marker = await kv.get(keys.layout);
  const from = marker ? Number((parseJson(marker.value) as { v?: number } | undefined)?.v) : 1;
  if (from > LAYOUT || !Number.isInteger(from)) {
    throw new StoreError('invalid', `store at ${keys.root} has layout ${marker?.value}; this version knows layouts up to ${LAYOUT}`);
  }
  const report: MigrateReport = { from, vms: 0, networks: 0, written: 0, movedStates: 0, skipped: [] };
  const networkEntries = (await kv.range(keys.network(''))).entries;
  const networks = networkEntries.map((e) => keys.parse(e.key)?.parts[0]).filter((n): n is string => !!n);
  report.networks = networks.length;
  // Host copies are made from the network records as read here; each batch that writes one
  // compares its network and the network epoch (every network add, remove and change bumps it),
  // so a network or a forwarding target changed meanwhile fails the run (run it again).
  const epoch = await kv.get(keys.networkEpoch);
  const epochCompare: KvCompare = { key: keys.networkEpoch, modRevision: epoch?.modRevision ?? 0 };
  const records = new Map<string, { entry: KvEntry; network: Network }>();
  for (const entry of networkEntries) {
    const parsed = NetworkSchema.safeParse(parseJson(entry.value));
    if (parsed.success) records.set(parsed.data.name, { entry, network: parsed.data });
    else report.skipped.push(entry.key);
  }
  const hostCopy = new Map<string, HostCopy>([...records].map(([name, { entry, network }]) => [name, {
    compares: [{ key: entry.key, modRevision: entry.modRevision }, epochCompare],
    value: hostNetworkCopy(network, (target) => records.get(target)?.network),
  }]));

  // What layout 2 adds, read once in bulk (a store of a million VMs is not read key by key): the
  // first attempt of each batch plans from these; a retry re-reads its keys one by one.
  const known = new Map<string, string>();
  const users = new Map<string, KvEntry>();
  for (const e of (await kv.range(keys.user(''))).entries) users.set(e.key, e);
  for (const e of (await kv.range(keys.ownership)).entries) known.set(e.key, e.value);
  for (const e of (await kv.range(keys.hosts)).entries) {
    const kind = keys.parse(e.key)?.kind;
    if (kind === 'launch' || kind === 'host-network') known.set(e.key, e.value);
  }
  for (const e of (await kv.range(keys.placements)).entries) known.set(e.key, e.value);
  const snapshot: Reader = {
    vm: async (e) => e,
    user: async (key) => users.get(key),
    value: async (key) => known.get(key),
  };
  const live: Reader = {
    vm: (e) => kv.get(e.key),
    user: (key) => kv.get(key),
    value: async (key) => (await kv.get(key))?.value,
  };

  for (const network of networks) {
    const entries = (await kv.range(keys.vmsOf(network))).entries;
    for (const e of entries) if (keys.parse(e.key)?.kind === 'owner') known.set(e.key, e.value);
    const vms = entries.filter((e) => keys.parse(e.key)?.kind === 'vm');
    for (let i = 0; i < vms.length;) {
      const chunk = vms.slice(i, i + Math.floor(TXN_OPS / 4));
      await commitWithRetry(kv, (attempt) => planVms(attempt === 0 ? snapshot : live, keys, chunk, report), (batch) => {
        report.written += batch.puts.length + batch.deletes.length;
        for (const p of batch.puts) known.set(p.key, p.value);
      });
      i += chunk.length;
      report.vms += chunk.length;
      opts.onBatch?.({ vms: report.vms, written: report.written });
    }
  }

  // Every host with a launch spec in a network (read at the start, or written above) gets that
  // network's copy, also where the VM record itself was skipped: an agent missing the copy would
  // stop the VM.
  const pairs = new Set<string>();
  for (const key of known.keys()) {
    const k = keys.parse(key);
    if (k?.kind === 'launch') pairs.add(`${k.parts[0]}/${k.parts[1]}`);
  }
  const missing = [...pairs].map((p) => p.split('/')).filter(([host, network]) => {
    const copy = hostCopy.get(network);
    return copy && (known.get(keys.hostNetwork(host, network)) !== copy.value || known.get(keys.placed(network, host)) !== '');
  });
  for (let i = 0; i < missing.length; i += Math.floor(TXN_OPS / 2)) {
    const batch: Batch = { compares: [], puts: [], deletes: [] };
    for (const [host, network] of missing.slice(i, i + Math.floor(TXN_OPS / 2))) {
      const copy = hostCopy.get(network)!;
      batch.puts.push({ key: keys.hostNetwork(host, network), value: copy.value }, { key: keys.placed(network, host), value: '' });
      for (const c of copy.compares) if (!batch.compares.some((b) => b.key === c.key)) batch.compares.push(c);
    }
    const r = await kv.txn(batch);
    if (!r.succeeded) throw new StoreError('conflict', 'networks changed while migrating; stop other writers and run `store migrate` again');
    report.written += batch.puts.length;
    opts.onBatch?.({ vms: report.vms, written: report.written });
  }

  // Agent reports: from vm-state/<network>/<name> to hosts/<host>/state/<network>/<name>.
  const legacy = (await kv.range(keys.legacyVmStates)).entries;
  for (let i = 0; i < legacy.length; i += Math.floor(TXN_OPS / 2)) {
    const chunk = legacy.slice(i, i + Math.floor(TXN_OPS / 2));
    const batch: Batch = { compares: [], puts: [], deletes: [] };
    for (const e of chunk) {
      const k = keys.parse(e.key);
      const state = VmStateSchema.safeParse(parseJson(e.value));
      if (k?.kind !== 'legacy-vm-state' || !state.success) {
        report.skipped.push(e.key);
        continue;
      }
      batch.compares.push({ key: e.key, modRevision: e.modRevision });
      batch.puts.push({ key: keys.vmState(state.data.host, k.parts[0], k.parts[1]), value: e.value });
      batch.deletes.push(e.key);
    }
    if (!batch.deletes.length) continue;
    // A report the agent rewrites meanwhile fails the compare: the next run moves it.
    const r = await kv.txn(batch);
    if (r.succeeded) {
      report.movedStates += batch.deletes.length;
      report.written += batch.puts.length + batch.deletes.length;
    } else {
      throw new StoreError('conflict', 'agent reports changed while moving them; run `store migrate` again');
    }
    opts.onBatch?.({ vms: report.vms, written: report.written });
  }

  if (!marker || from !== LAYOUT) {
    const r = await kv.txn({
      compares: [{ key: keys.layout, modRevision: marker?.modRevision ?? 0 }],
      puts: [{ key: keys.layout, value: JSON.stringify({ v: LAYOUT }) }],
      deletes: [],
    });
    if (!r.succeeded) throw new StoreError('conflict', 'the layout marker changed while migrating; run `store migrate` again');
    report.written++;
  }
  return report;
}

/** Where a plan reads: the bulk snapshot (first attempt) or the store itself (a retry must see what made the last attempt fail). */
interface Reader {
  vm(read: KvEntry): Promise<KvEntry | undefined>;
  user(key: string): Promise<KvEntry | undefined>;
  value(key: string): Promise<string | undefined>;
}

/** What these VMs lack in layout 2, guarded by the revisions it was read at. */
async function planVms(read: Reader, keys: Keys, entries: KvEntry[], report: MigrateReport): Promise<Batch> {
  const batch: Batch = { compares: [], puts: [], deletes: [] };
  const users = new Map<string, KvEntry | undefined>();
  const want = new Map<string, string>();
  for (const stale of entries) {
    const e = await read.vm(stale);
    if (!e) continue;
    const parsed = VmSchema.safeParse(parseJson(e.value));
    if (!parsed.success) {
      if (!report.skipped.includes(e.key)) report.skipped.push(e.key);
      continue;
    }
    const vm = parsed.data;
    batch.compares.push({ key: e.key, modRevision: e.modRevision });
    if (vm.owner) {
      if (!users.has(vm.owner)) users.set(vm.owner, await read.user(keys.user(vm.owner)));
      const user = users.get(vm.owner);
      const decoded = user && UserSchema.safeParse(parseJson(user.value));
      want.set(keys.owned(vm.owner, vm.network, vm.name), '');
      if (decoded?.success) want.set(keys.owner(vm.network, vm.owner), JSON.stringify(decoded.data));
      else if (!report.skipped.includes(keys.user(vm.owner))) report.skipped.push(keys.user(vm.owner));
    }
    if (vm.host) want.set(keys.launch(vm.host, vm.network, vm.name), launchSpec(vm));
  }
  for (const [name, user] of users) batch.compares.push({ key: keys.user(name), modRevision: user?.modRevision ?? 0 });
  for (const [key, value] of want) if ((await read.value(key)) !== value) batch.puts.push({ key, value });
  return batch;
}

async function commitWithRetry(kv: Kv, plan: (attempt: number) => Promise<Batch>, wrote: (batch: Batch) => void): Promise<void> {
  for (let i = 0; i < ATTEMPTS; i++) {
    const batch = await plan(i);
    if (!batch.puts.length && !batch.deletes.length) return;
    const r = await kv.txn(batch);
    if (r.succeeded) {
      wrote(batch);
      return;
    }
  }
  throw new StoreError('conflict', 'VMs kept changing while migrating them; stop other writers and run `store migrate` again');
}
