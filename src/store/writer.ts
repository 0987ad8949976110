// Every write the operator CLI makes, as etcd transactions over the Kv interface.
//
// Each write reads what it depends on with its mod revision and commits only if none of them
// moved (compare-and-swap). On a lost race it re-reads and tries again a bounded number of
// times, then reports a conflict: no write is ever half-applied or silently dropped.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Kv, KvCompare, KvEntry } from './kv.js';
import { LAYOUT, type Keys } from './keys.js';
import { claims as vmClaims, derivedRecords, forwardTargets, hostNetworkCopy, type Put } from './derived.js';
import { StoreError, exists, inUse, invalid, notFound } from './errors.js';
import {
  HostSchema, NetworkSchema, PREFIX6_64_MESSAGE, isSlaac64, metadataAddresses, UserSchema, VmSchema, VmStateSchema, describeIssues,
  type Host, type Network, type User, type Vm, type VmState,
} from '../model/schema.js';
import { namesNest, parseAddress, parsePrefix, prefixContains, reverseZones } from '../model/ip.js';
import { randomLocalMac } from '../model/mac.js';
import { eui64Address } from '../model/eui64.js';
import { BASE64_FIELD, MAX_DATA_BYTES, encodeData, type DataKind } from '../model/user-data.js';
import { parseJson } from './json.js';

/** A network added (with its record) or removed (without) in the transaction being planned. */
interface Pending { name: string; network?: Network }

/** A transaction's parts, gathered from several helpers. */
interface Ops { compares: KvCompare[]; puts: Put[]; deletes: string[] }
const noOps = (): Ops => ({ compares: [], puts: [], deletes: [] });
function merge(...all: Ops[]): Ops {
  return { compares: all.flatMap((o) => o.compares), puts: all.flatMap((o) => o.puts), deletes: all.flatMap((o) => o.deletes) };
}

/** How many of a copy's other references a removal compares (see dropCopy). */
const REF_COMPARES = 8;

const CAS_ATTEMPTS = 64;
const MAC_ATTEMPTS = 16;

function validate<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalid(`${what}: ${describeIssues(r.error)}`);
  return r.data;
}

function decode<S extends z.ZodType>(schema: S, e: KvEntry): z.output<S> {
  return validate(schema, JSON.parse(e.value), `stored record ${e.key} is invalid`);
}

type DataFields = 'userData' | 'userDataBase64' | 'vendorData' | 'vendorDataBase64';

/**
 * The fields a write may name. User-data and vendor-data are given as bytes (a string stands for
 * its UTF-8 bytes); the writer stores them as text or base64 (model/user-data.ts).
 */
export type VmPatch = Partial<Omit<z.input<typeof VmSchema>, 'v' | 'id' | 'name' | 'network' | 'createdAt' | DataFields>> & {
  resources?: Partial<Vm['resources']>;
  userData?: Uint8Array | string;
  vendorData?: Uint8Array | string;
};

const DATA_NAMES: Record<DataKind, string> = { userData: 'user-data', vendorData: 'vendor-data' };

/**
 * A record with the patch's user-data and vendor-data in their stored form: the text or base64
 * field set and the other one gone. Refuses more than MAX_DATA_BYTES before anything is written.
 */
function withData(record: Record<string, unknown>, patch: VmPatch): Record<string, unknown> {
  const out = { ...record };
  for (const kind of ['userData', 'vendorData'] as const) {
    const given = patch[kind];
    if (given === undefined) continue;
    const bytes = typeof given === 'string' ? Buffer.from(given, 'utf8') : given;
    if (bytes.byteLength > MAX_DATA_BYTES) throw invalid(`${DATA_NAMES[kind]} is ${bytes.byteLength} bytes; at most ${MAX_DATA_BYTES} are allowed`);
    delete out[kind];
    delete out[BASE64_FIELD[kind]];
    const stored = encodeData(bytes);
    if ('text' in stored) out[kind] = stored.text;
    else out[BASE64_FIELD[kind]] = stored.base64;
  }
  return out;
}

export class StoreWriter {
  private layoutChecked = false;

  constructor(readonly kv: Kv, readonly keys: Keys) {}

  // ---- layout ----

  /**
   * Refuses to write into a store still in layout 1 (it would get owner copies for some VMs only):
   * `store migrate` first. An empty store gets the marker with its first network.
   */
  private async layoutOps(): Promise<Ops> {
    if (this.layoutChecked) return noOps();
    const marker = await this.kv.get(this.keys.layout);
    if (marker) {
      const v = (JSON.parse(marker.value) as { v?: number }).v;
      if (v !== LAYOUT) throw invalid(`store at ${this.keys.root} has layout ${v}; this version writes layout ${LAYOUT}`);
      this.layoutChecked = true;
      return noOps();
    }
    const networks = await this.kv.range(this.keys.network(''));
    if (networks.entries.length) throw invalid(`store at ${this.keys.root} is in layout 1: run \`uncloud-metadata store migrate\` first`);
    return { compares: [{ key: this.keys.layout, modRevision: 0 }], puts: [{ key: this.keys.layout, value: JSON.stringify({ v: LAYOUT }) }], deletes: [] };
  }

  // ---- networks ----

  async listNetworks(): Promise<Network[]> {
    return (await this.kv.range(this.keys.network(''))).entries.map((e) => decode(NetworkSchema, e));
  }

  async getNetwork(name: string): Promise<{ network: Network; entry: KvEntry }> {
    const entry = await this.kv.get(this.keys.network(name));
    if (!entry) throw notFound(`network "${name}" does not exist`);
    return { network: decode(NetworkSchema, entry), entry };
  }

  async addNetwork(input: Omit<z.input<typeof NetworkSchema>, 'v'>): Promise<Network> {
    const network = validate(NetworkSchema, { v: 1, ...input }, 'network');
    if (!isSlaac64(network)) throw invalid(`${PREFIX6_64_MESSAGE}, not ${network.prefix6}`);
    const others = await this.listNetworks();
    for (const o of others) {
      if (o.name === network.name) throw exists(`network "${network.name}" already exists`);
      if (o.domain === network.domain) throw exists(`domain "${network.domain}" is already served by network "${o.name}"`);
      if (overlaps(o.prefix6, network.prefix6)) throw exists(`prefix ${network.prefix6} overlaps network "${o.name}" (${o.prefix6})`);
      if (o.prefix4 && network.prefix4 && overlaps(o.prefix4, network.prefix4)) throw exists(`prefix ${network.prefix4} overlaps network "${o.name}" (${o.prefix4})`);
      const clash = zoneClash(network, o);
      if (clash) throw exists(clash);
    }
    const own = zoneClash(network, network);
    if (own) throw invalid(own);
    checkInside(network.metadata6, network.prefix6, 'metadata6');
    if (network.metadata4) {
      if (!network.prefix4) throw invalid('metadata4 needs prefix4');
      checkInside(network.metadata4, network.prefix4, 'metadata4');
    }
    for (const a of network.replicas6 ?? []) checkInside(a, network.prefix6, 'replica6');
    for (const a of network.replicas4 ?? []) {
      if (!network.prefix4) throw invalid('replica4 needs prefix4');
      checkInside(a, network.prefix4, 'replica4');
    }
    const all = metadataAddresses(network);
    const twice = [...all.v6, ...all.v4].find((a, i, list) => list.indexOf(a) !== i);
    if (twice) throw invalid(`metadata address ${twice} is given twice`);
    const layout = await this.layoutOps();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      // Networks that forward to this one get its prefixes in their host copies, now.
      const forwarders = await this.forwardersTo(network.name);
      const r = await this.kv.txn(merge(layout, await this.bumpNetworkEpoch(), forwarders, {
        compares: [{ key: this.keys.network(network.name), modRevision: 0 }],
        puts: [{ key: this.keys.network(network.name), value: JSON.stringify(network) }],
        deletes: [],
      }, await this.refreshForwarders(forwarders, { name: network.name, network })));
      if (r.succeeded) {
        this.layoutChecked = true;
        return network;
      }
      if (layout.puts.length) this.layoutChecked = false;
      if (await this.kv.get(this.keys.network(network.name))) throw exists(`network "${network.name}" already exists`);
    }
    throw new StoreError('conflict', `networks kept changing while adding "${network.name}"; try again`);
  }

  /**
   * Replaces a network's placement as a whole: what is not given takes its default (a region
   * alone drops a stored zone of another region; model/placement.ts). Nothing else changes.
   */
  async setNetworkPlacement(name: string, placement: { region?: string; zone?: string }): Promise<Network> {
    return this.setNetwork(name, ({ region: _r, zone: _z, ...rest }) => ({ ...rest, ...stripUndefined(placement) }));
  }

  /** Replaces where the hosts may route the network's guests (empty: nowhere). */
  async setNetworkForwarding(name: string, forwardTo: string[]): Promise<Network> {
    return this.setNetwork(name, ({ forwardTo: _f, ...rest }) => (forwardTo.length ? { ...rest, forwardTo: [...new Set(forwardTo)] } : rest));
  }

  /** Changes a network record and, in the same transaction, its copy on every host running its VMs. */
  private async setNetwork(name: string, change: (current: Network) => Record<string, unknown>): Promise<Network> {
    await this.layoutOps();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const { network: current, entry } = await this.getNetwork(name);
      const next = validate(NetworkSchema, change(current), 'network');
      const r = await this.kv.txn(merge(await this.bumpNetworkEpoch(), await this.hostCopies(next), {
        compares: [{ key: entry.key, modRevision: entry.modRevision }], puts: [{ key: entry.key, value: JSON.stringify(next) }], deletes: [],
      }));
      if (r.succeeded) return next;
    }
    throw new StoreError('conflict', `network "${name}" kept changing under us; try again`);
  }

  async removeNetwork(name: string): Promise<void> {
    await this.layoutOps();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const { entry } = await this.getNetwork(name);
      const vms = (await this.kv.range(this.keys.vmsOf(name))).entries.filter((e) => this.keys.parse(e.key)?.kind === 'vm');
      if (vms.length) throw inUse(`network "${name}" still has ${vms.length} VM(s); remove them first`);
      // Networks that forward to it lose its prefixes from their host copies in the same step.
      const forwarders = await this.forwardersTo(name);
      const r = await this.kv.txn(merge(await this.bumpNetworkEpoch(), forwarders, await this.refreshForwarders(forwarders, { name }), {
        compares: [{ key: entry.key, modRevision: entry.modRevision }], puts: [], deletes: [entry.key],
      }));
      if (r.succeeded) return;
    }
    throw new StoreError('conflict', `network "${name}" kept changing while removing it; try again`);
  }

  // ---- users ----

  async listUsers(): Promise<User[]> {
    return (await this.kv.range(this.keys.user(''))).entries.map((e) => decode(UserSchema, e));
  }

  async getUser(name: string): Promise<User> {
    const e = await this.kv.get(this.keys.user(name));
    if (!e) throw notFound(`user "${name}" does not exist`);
    return decode(UserSchema, e);
  }

  async addUserKey(user: string, keyName: string, key: string): Promise<User> {
    return this.casUser(user, true, (u) => {
      if (u.keys.some((k) => k.name === keyName)) throw exists(`user "${user}" already has a key named "${keyName}"`);
      return { ...u, keys: [...u.keys, { name: keyName, key }] };
    });
  }

  async removeUserKey(user: string, keyName: string): Promise<User> {
    return this.casUser(user, false, (u) => {
      if (!u.keys.some((k) => k.name === keyName)) throw notFound(`user "${user}" has no key named "${keyName}"`);
      return { ...u, keys: u.keys.filter((k) => k.name !== keyName) };
    });
  }

  async removeUser(name: string): Promise<void> {
    const e = await this.kv.get(this.keys.user(name));
    if (!e) throw notFound(`user "${name}" does not exist`);
    await this.layoutOps();
    const owned = (await this.kv.range(this.keys.ownedBy(name))).entries.map((r) => this.keys.parse(r.key)?.parts[2] ?? '?');
    if (owned.length) throw inUse(`user "${name}" owns ${owned.length} VM(s): ${owned.slice(0, 5).join(', ')}`);
    const r = await this.kv.txn({ compares: [{ key: e.key, modRevision: e.modRevision }], puts: [], deletes: [e.key] });
    if (!r.succeeded) throw new StoreError('conflict', `user "${name}" changed while removing it; try again`);
  }

  /**
   * Changes a user and, in the same transaction, the copy of it in every network where it owns a
   * VM (what those networks' appliances read). A VM added meanwhile in a new network re-puts the
   * user record (addOwner), which fails this compare and makes us look again.
   */
  private async casUser(name: string, create: boolean, change: (u: User) => User): Promise<User> {
    const layout = await this.layoutOps();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const key = this.keys.user(name);
      const e = await this.kv.get(key);
      if (!e && !create) throw notFound(`user "${name}" does not exist`);
      const current: User = e ? decode(UserSchema, e) : validate(UserSchema, { v: 1, name, keys: [] }, 'user');
      const next = validate(UserSchema, change(current), 'user');
      const value = JSON.stringify(next);
      const networks = new Set((await this.kv.range(this.keys.ownedBy(name))).entries.map((r) => this.keys.parse(r.key)?.parts[1]).filter((n): n is string => !!n));
      const copies = await this.refreshCopies([...networks].map((network) => this.keys.owner(network, name)), value);
      const r = await this.kv.txn(merge(i === 0 ? layout : noOps(), copies, { compares: [{ key, modRevision: e?.modRevision ?? 0 }], puts: [{ key, value }], deletes: [] }));
      if (r.succeeded) return next;
    }
    throw new StoreError('conflict', `user "${name}" kept changing under us; try again`);
  }

  // ---- VMs ----

  /** What each host's agent last reported, by "<network>/<name>" (the newest report when a VM moved). */
  async listVmStates(): Promise<Map<string, VmState>> {
    const out = new Map<string, VmState>();
    for (const e of (await this.kv.range(this.keys.hosts)).entries) {
      const k = this.keys.parse(e.key);
      if (k?.kind !== 'vm-state') continue;
      const r = VmStateSchema.safeParse(parseJson(e.value));
      const key = `${k.parts[1]}/${k.parts[2]}`;
      const seen = out.get(key);
      if (r.success && (!seen || seen.since < r.data.since)) out.set(key, r.data);
    }
    return out;
  }

  async listHosts(): Promise<Host[]> {
    return (await this.kv.range(this.keys.hosts)).entries.flatMap((e) => {
      if (this.keys.parse(e.key)?.kind !== 'host') return [];
      const r = HostSchema.safeParse(parseJson(e.value));
      return r.success ? [r.data] : [];
    });
  }

  async listVms(network?: string): Promise<Vm[]> {
    const prefix = network ? this.keys.vmsOf(network) : this.keys.vms;
    return (await this.kv.range(prefix)).entries.filter((e) => this.keys.parse(e.key)?.kind === 'vm').map((e) => decode(VmSchema, e));
  }

  /** Finds a VM by name; `network` is needed only when the name exists in several networks. */
  async findVm(name: string, network?: string): Promise<{ vm: Vm; entry: KvEntry }> {
    if (network) {
      const entry = await this.kv.get(this.keys.vm(network, name));
      if (!entry) throw notFound(`VM "${name}" does not exist in network "${network}"`);
      return { vm: decode(VmSchema, entry), entry };
    }
    const matches = (await this.kv.range(this.keys.vms)).entries.filter((e) => e.key.endsWith(`/${name}`) && this.isVmNamed(e.key, name));
    if (!matches.length) throw notFound(`VM "${name}" does not exist`);
    if (matches.length > 1) throw invalid(`VM name "${name}" exists in several networks; name one with --network`);
    return { vm: decode(VmSchema, matches[0]), entry: matches[0] };
  }

  private isVmNamed(key: string, name: string): boolean {
    const k = this.keys.parse(key);
    return k?.kind === 'vm' && k.parts[1] === name;
  }

  async addVm(input: Omit<VmPatch, 'mac'> & { name: string; network: string; mac?: string }): Promise<Vm> {
    const givenMac = input.mac;
    const layout = await this.layoutOps();
    for (let attempt = 0; attempt < MAC_ATTEMPTS; attempt++) {
      const { network, entry: netEntry } = await this.getNetwork(input.network);
      const vm = validate(VmSchema, withData({
        v: 1, id: randomUUID(), createdAt: new Date().toISOString(), ...input,
        mac: givenMac ?? randomLocalMac(),
        resources: input.resources ?? {},
      }, input), 'VM');
      this.checkAddresses(vm, network);
      const owner = vm.owner ? await this.addOwner(vm.owner, vm.network) : noOps();
      const placed = vm.host ? await this.addHostNetwork(vm.host, network, netEntry) : noOps();
      const claims = vmClaims(this.keys, vm, network);
      const r = await this.kv.txn(merge(attempt === 0 ? layout : noOps(), owner, placed, {
        compares: [
          { key: netEntry.key, modRevision: netEntry.modRevision },
          { key: this.keys.vm(vm.network, vm.name), modRevision: 0 },
          ...claims.map((c) => ({ key: c.key, modRevision: 0 })),
        ],
        puts: [{ key: this.keys.vm(vm.network, vm.name), value: JSON.stringify(vm) }, ...derivedRecords(this.keys, vm, network)],
        deletes: [],
      }));
      if (r.succeeded) return vm;
      // Find out which compare failed, and either name it or retry with a fresh MAC.
      if (await this.kv.get(this.keys.vm(vm.network, vm.name))) throw exists(`VM "${vm.name}" already exists in network "${vm.network}"`);
      const macHolder = await this.kv.get(claims[0].key);
      if (macHolder && givenMac) throw this.claimTaken(claims[0].key, macHolder);
      if (!macHolder) await this.throwIfClaimed(claims.slice(1));
      // otherwise: the network or the owner changed, or a random MAC collided; go again
    }
    throw new StoreError('conflict', `could not create VM "${input.name}": the store kept changing; try again`);
  }

  /**
   * Changes the fields a patch names and nothing else. A function patch is applied to the
   * current record inside the CAS loop, so concurrent edits of different fields all land.
   */
  async setVm(name: string, network: string | undefined, patchOrFn: VmPatch | ((current: Vm) => VmPatch)): Promise<Vm> {
    const layout = await this.layoutOps();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const { vm: current, entry } = await this.findVm(name, network);
      const patch = typeof patchOrFn === 'function' ? patchOrFn(current) : patchOrFn;
      const { network: net, entry: netEntry } = await this.getNetwork(current.network);
      const next = validate(VmSchema, withData({
        ...current, ...stripUndefined(patch),
        resources: { ...current.resources, ...stripUndefined(patch.resources ?? {}) },
      }, patch), 'VM');
      this.checkAddresses(next, net);
      const claimKeys = new Set(vmClaims(this.keys, next, net).map((c) => c.key));
      const before = new Map(derivedRecords(this.keys, current, net).map((p) => [p.key, p.value]));
      const after = derivedRecords(this.keys, next, net);
      const added = after.filter((p) => !before.has(p.key) && claimKeys.has(p.key));
      const owner = next.owner === current.owner ? noOps() : merge(
        next.owner ? await this.addOwner(next.owner, next.network) : noOps(),
        current.owner ? await this.dropOwner(current.owner, current.network, current.name) : noOps(),
      );
      const placed = next.host === current.host ? noOps() : merge(
        next.host ? await this.addHostNetwork(next.host, net, netEntry) : noOps(),
        current.host ? await this.dropHostNetwork(current.host, current.network, current.name) : noOps(),
      );
      const r = await this.kv.txn(merge(i === 0 ? layout : noOps(), owner, placed, {
        compares: [
          { key: entry.key, modRevision: entry.modRevision },
          { key: netEntry.key, modRevision: netEntry.modRevision },
          ...added.map((c) => ({ key: c.key, modRevision: 0 })),
        ],
        puts: [{ key: entry.key, value: JSON.stringify(next) }, ...after.filter((p) => before.get(p.key) !== p.value)],
        deletes: [...before.keys()].filter((k) => !after.some((p) => p.key === k)),
      }));
      if (r.succeeded) return next;
      await this.throwIfClaimed(added);
    }
    throw new StoreError('conflict', `VM "${name}" kept changing under us; try again`);
  }

  async removeVm(name: string, network?: string): Promise<Vm> {
    const layout = await this.layoutOps();
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const { vm, entry } = await this.findVm(name, network);
      const { network: net } = await this.getNetwork(vm.network);
      const owner = vm.owner ? await this.dropOwner(vm.owner, vm.network, vm.name) : noOps();
      const placed = vm.host ? await this.dropHostNetwork(vm.host, vm.network, vm.name) : noOps();
      const r = await this.kv.txn(merge(i === 0 ? layout : noOps(), owner, placed, {
        compares: [{ key: entry.key, modRevision: entry.modRevision }],
        puts: [],
        deletes: [
          entry.key, ...derivedRecords(this.keys, vm, net).map((p) => p.key),
          ...(vm.host ? [this.keys.vmState(vm.host, vm.network, vm.name)] : []),
          // What the guest reported goes with it (a VM re-created under the name starts empty).
          this.keys.guestAttributes(vm.network, vm.name),
        ],
      }));
      if (r.succeeded) return vm;
    }
    throw new StoreError('conflict', `VM "${name}" kept changing under us; try again`);
  }

  // ---- owner copies: vms/<network>/.owners/<user> exists exactly while owned/<user>/<network>/ is not empty ----

  /**
   * A VM of `user` joins `network`: the user's copy there is (re-)put from the current record, which
   * must not change before we commit. The re-put also fails a concurrent removal that was about to
   * delete the copy (it compares the copy). A first copy in a network re-puts the user record too,
   * so a concurrent user change, which did not know about this network, fails and looks again.
   */
  private async addOwner(user: string, network: string): Promise<Ops> {
    const entry = await this.kv.get(this.keys.user(user));
    if (!entry) throw notFound(`user "${user}" does not exist`);
    return merge(
      { compares: [{ key: entry.key, modRevision: entry.modRevision }], puts: [], deletes: [] },
      await this.putCopy(this.keys.owner(network, user), JSON.stringify(decode(UserSchema, entry)), entry),
    );
  }

  /**
   * A VM named `name` of `user` leaves `network`: the copy goes with the last such VM. When other
   * VMs remain, comparing some of them makes the last of several concurrent removals fail and
   * look again (every other reference it compared is gone by then), so it deletes the copy.
   */
  private async dropOwner(user: string, network: string, name: string): Promise<Ops> {
    return this.dropCopy(this.keys.ownedBy(user, network), this.keys.owned(user, network, name), this.keys.owner(network, user));
  }

  // ---- host network copies: hosts/<host>/networks/<network> and placed/<network>/<host> exist exactly while hosts/<host>/vms/<network>/ is not empty ----

  /**
   * A VM of `network` is placed on `host`: the host's copy is (re-)put from the network as it is
   * (the caller compares `netEntry`), with its forwarding resolved against the target networks,
   * whose appearance or removal meanwhile fails us. A first copy on a host re-puts the network
   * record, so a concurrent network change, which did not know about this host, fails and looks again.
   */
  private async addHostNetwork(host: string, network: Network, netEntry: KvEntry): Promise<Ops> {
    const targets = await this.readTargets(network);
    return merge(targets.ops, await this.putCopy(this.keys.hostNetwork(host, network.name), hostNetworkCopy(network, targets.lookup), netEntry, [{ key: this.keys.placed(network.name, host), value: '' }]));
  }

  private async dropHostNetwork(host: string, network: string, name: string): Promise<Ops> {
    return this.dropCopy(this.keys.launchesOf(host, network), this.keys.launch(host, network, name), this.keys.hostNetwork(host, network), [this.keys.placed(network, host)]);
  }

  /**
   * Every host copy of `network` brought to its value now (`pending`: a network being added or
   * removed in the same transaction, as the targets will be). A copy removed meanwhile fails the
   * compare; one added meanwhile re-put the network record, which the caller compares.
   */
  private async hostCopies(network: Network, pending?: Pending): Promise<Ops> {
    const markers = (await this.kv.range(this.keys.placedOf(network.name))).entries;
    if (!markers.length) return noOps();
    const targets = await this.readTargets(network, pending);
    const value = hostNetworkCopy(network, targets.lookup);
    return merge(targets.ops, await this.refreshCopies(markers.map((marker) => this.keys.hostNetwork(this.keys.parse(marker.key)!.parts[1], network.name)), value));
  }

  /**
   * Network adds, removals and changes pass one counter (keys.ts network-epoch): a forwarding
   * change that resolved its targets and the add or removal of one of them cannot both commit on
   * what each read before the other (the removal would leave the target's prefixes in the
   * forwarder's host copies, where a later network reusing them would be reachable).
   */
  private async bumpNetworkEpoch(): Promise<Ops> {
    const e = await this.kv.get(this.keys.networkEpoch);
    const n = Number(e?.value ?? 0);
    return { compares: [{ key: this.keys.networkEpoch, modRevision: e?.modRevision ?? 0 }], puts: [{ key: this.keys.networkEpoch, value: String((Number.isSafeInteger(n) ? n : 0) + 1) }], deletes: [] };
  }

  /** The networks whose forwardTo names `name`, each compared: their host copies resolve it. */
  private async forwardersTo(name: string): Promise<Ops & { networks: Network[] }> {
    const entries = (await this.kv.range(this.keys.network(''))).entries
      .map((e) => ({ e, n: decode(NetworkSchema, e) })).filter(({ n }) => forwardTargets(n).includes(name));
    return { networks: entries.map(({ n }) => n), compares: entries.map(({ e }) => ({ key: e.key, modRevision: e.modRevision })), puts: [], deletes: [] };
  }

  private async refreshForwarders(forwarders: { networks: Network[] }, pending: Pending): Promise<Ops> {
    return merge(...await Promise.all(forwarders.networks.map((n) => this.hostCopies(n, pending))));
  }

  /** The networks `network` forwards to, as they are now, compared so that a change meanwhile fails us. */
  private async readTargets(network: Network, pending?: Pending): Promise<{ ops: Ops; lookup: (name: string) => Network | undefined }> {
    const found = new Map<string, Network>();
    const ops = noOps();
    for (const name of forwardTargets(network)) {
      if (name === pending?.name) {
        if (pending.network) found.set(name, pending.network);
        continue;
      }
      const e = await this.kv.get(this.keys.network(name));
      ops.compares.push({ key: this.keys.network(name), modRevision: e?.modRevision ?? 0 });
      if (e) found.set(name, decode(NetworkSchema, e));
    }
    return { ops, lookup: (name) => found.get(name) };
  }

  // ---- copies in general: a copy exists exactly while some reference to it does ----

  /**
   * Puts `value` into each copy that exists and differs, comparing it: a removal of its last
   * reference meanwhile (which deletes it) fails us, so a copy is never re-created for nobody. A
   * copy missing here is skipped: one created meanwhile re-put its source, which the caller compares.
   */
  private async refreshCopies(copyKeys: string[], value: string): Promise<Ops> {
    const ops = noOps();
    for (const key of copyKeys) {
      const copy = await this.kv.get(key);
      if (!copy || copy.value === value) continue;
      ops.compares.push({ key, modRevision: copy.modRevision });
      ops.puts.push({ key, value });
    }
    return ops;
  }

  /**
   * (Re-)puts a copy. The re-put also fails a concurrent removal that was about to delete it (that
   * removal compares the copy). A first copy re-puts its source record too (and puts `first`).
   */
  private async putCopy(copyKey: string, value: string, source: KvEntry, first: Put[] = []): Promise<Ops> {
    const copy = await this.kv.get(copyKey);
    return {
      compares: [{ key: copyKey, modRevision: copy?.modRevision ?? 0 }],
      puts: [{ key: copyKey, value }, ...(copy ? [] : [{ key: source.key, value: source.value }, ...first])],
      deletes: [],
    };
  }

  /**
   * The reference `mine` under `refs` goes: the copy (and `also`) go with the last one. When other
   * references remain, comparing some of them makes the last of several concurrent removals fail
   * and look again (every other reference it compared is gone by then), so it deletes the copy.
   */
  private async dropCopy(refs: string, mine: string, copyKey: string, also: string[] = []): Promise<Ops> {
    const others = (await this.kv.range(refs)).entries.filter((e) => e.key !== mine);
    if (others.length) return { compares: others.slice(0, REF_COMPARES).map((e) => ({ key: e.key, modRevision: e.modRevision })), puts: [], deletes: [] };
    const copy = await this.kv.get(copyKey);
    return { compares: [{ key: copyKey, modRevision: copy?.modRevision ?? 0 }], puts: [], deletes: copy ? [copyKey, ...also] : also };
  }

  /** Names the first of these claims another VM holds, if any. */
  private async throwIfClaimed(claims: { key: string }[]): Promise<void> {
    for (const c of claims) {
      const holder = await this.kv.get(c.key);
      if (holder) throw this.claimTaken(c.key, holder);
    }
  }

  private claimTaken(key: string, holder: KvEntry): StoreError {
    const what = this.keys.parse(key)?.kind === 'mac' ? 'MAC' : 'address';
    return exists(`${what} ${key.split('/').pop()} is already used by VM ${holder.value}`);
  }

  private checkAddresses(vm: Vm, network: Network): void {
    const derived = eui64Address(parsePrefix(network.prefix6, 6)!, vm.mac);
    for (const a of vm.addresses) {
      const addr = parseAddress(a)!;
      const prefix = addr.kind() === 'ipv6' ? network.prefix6 : network.prefix4;
      if (!prefix) throw invalid(`address ${a}: network "${network.name}" has no IPv4 prefix`);
      checkInside(a, prefix, 'address');
      const service = metadataAddresses(network);
      if (service.v6.includes(a) || service.v4.includes(a)) throw invalid(`address ${a} is the metadata service's own`);
      if (a === derived) throw invalid(`address ${a} is already the VM's EUI-64 address; no need to give it`);
    }
  }
}

function checkInside(address: string, prefix: string, what: string): void {
  const p = parsePrefix(prefix)!;
  const a = parseAddress(address);
  if (!a || !prefixContains(p, a)) throw invalid(`${what} ${address} is not inside ${prefix}`);
}

/**
 * Where the DNS zones of network `n` would overlap those of `o` (or, with `o === n`, its domain
 * its own reverse zones): one zone answering for both would hide one network's names.
 */
function zoneClash(n: Network, o: Network): string | undefined {
  const reverse = (x: Network) => [...reverseZones(parsePrefix(x.prefix6)!), ...(x.prefix4 ? reverseZones(parsePrefix(x.prefix4)!) : [])];
  const mine = reverse(n);
  const theirs = reverse(o);
  const other = o === n ? '' : ` of network "${o.name}"`;
  for (const z of mine) {
    const hit = (o === n ? [] : theirs).find((t) => namesNest(z, t)) ?? (namesNest(z, o.domain) ? o.domain : undefined);
    if (hit) return `reverse zone ${z} of network "${n.name}" overlaps zone ${hit}${other}`;
  }
  const hit = theirs.find((t) => namesNest(n.domain, t));
  return hit ? `domain ${n.domain} of network "${n.name}" overlaps reverse zone ${hit}${other}` : undefined;
}

function overlaps(a: string, b: string): boolean {
  const pa = parsePrefix(a)!;
  const pb = parsePrefix(b)!;
  return prefixContains(pa, pb.address) || prefixContains(pb, pa.address);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
