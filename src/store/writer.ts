// Every write the operator CLI makes, as etcd transactions over the Kv interface.
//
// Each write reads what it depends on with its mod revision and commits only if none of them
// moved (compare-and-swap). On a lost race it re-reads and tries again a bounded number of
// times, then reports a conflict: no write is ever half-applied or silently dropped.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Kv, KvCompare, KvEntry } from './kv.js';
import type { Keys } from './keys.js';
import { StoreError, exists, inUse, invalid, notFound } from './errors.js';
import {
  HostSchema, NetworkSchema, UserSchema, VmSchema, VmStateSchema, describeIssues,
  type Host, type Network, type User, type Vm, type VmState,
} from '../model/schema.js';
import { namesNest, parseAddress, parsePrefix, prefixContains, reverseZones } from '../model/ip.js';
import { randomLocalMac } from '../model/mac.js';
import { eui64Address } from '../model/eui64.js';

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

export type VmPatch = Partial<Omit<z.input<typeof VmSchema>, 'v' | 'id' | 'name' | 'network' | 'createdAt'>> & {
  resources?: Partial<Vm['resources']>;
};

export class StoreWriter {
  constructor(readonly kv: Kv, readonly keys: Keys) {}

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
    const r = await this.kv.txn({
      compares: [{ key: this.keys.network(network.name), modRevision: 0 }],
      puts: [{ key: this.keys.network(network.name), value: JSON.stringify(network) }],
      deletes: [],
    });
    if (!r.succeeded) throw exists(`network "${network.name}" already exists`);
    return network;
  }

  async removeNetwork(name: string): Promise<void> {
    const { entry } = await this.getNetwork(name);
    const vms = await this.kv.range(this.keys.vmsOf(name));
    if (vms.entries.length) throw inUse(`network "${name}" still has ${vms.entries.length} VM(s); remove them first`);
    const r = await this.kv.txn({ compares: [{ key: entry.key, modRevision: entry.modRevision }], puts: [], deletes: [entry.key] });
    if (!r.succeeded) throw new StoreError('conflict', `network "${name}" changed while removing it; try again`);
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
    const owned = (await this.listVms()).filter((v) => v.owner === name);
    if (owned.length) throw inUse(`user "${name}" owns ${owned.length} VM(s): ${owned.slice(0, 5).map((v) => v.name).join(', ')}`);
    const r = await this.kv.txn({ compares: [{ key: e.key, modRevision: e.modRevision }], puts: [], deletes: [e.key] });
    if (!r.succeeded) throw new StoreError('conflict', `user "${name}" changed while removing it; try again`);
  }

  private async casUser(name: string, create: boolean, change: (u: User) => User): Promise<User> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const key = this.keys.user(name);
      const e = await this.kv.get(key);
      if (!e && !create) throw notFound(`user "${name}" does not exist`);
      const current: User = e ? decode(UserSchema, e) : validate(UserSchema, { v: 1, name, keys: [] }, 'user');
      const next = validate(UserSchema, change(current), 'user');
      const r = await this.kv.txn({ compares: [{ key, modRevision: e?.modRevision ?? 0 }], puts: [{ key, value: JSON.stringify(next) }], deletes: [] });
      if (r.succeeded) return next;
    }
    throw new StoreError('conflict', `user "${name}" kept changing under us; try again`);
  }

  // ---- VMs ----

  async listVmStates(): Promise<Map<string, VmState>> {
    const out = new Map<string, VmState>();
    for (const e of (await this.kv.range(this.keys.vmStates)).entries) {
      const k = this.keys.parse(e.key);
      const r = VmStateSchema.safeParse(JSON.parse(e.value));
      if (k && r.success) out.set(`${k.parts[0]}/${k.parts[1]}`, r.data);
    }
    return out;
  }

  async listHosts(): Promise<Host[]> {
    return (await this.kv.range(this.keys.hosts)).entries.flatMap((e) => {
      const r = HostSchema.safeParse(JSON.parse(e.value));
      return r.success ? [r.data] : [];
    });
  }

  async listVms(network?: string): Promise<Vm[]> {
    const prefix = network ? this.keys.vmsOf(network) : this.keys.vms;
    return (await this.kv.range(prefix)).entries.map((e) => decode(VmSchema, e));
  }

  /** Finds a VM by name; `network` is needed only when the name exists in several networks. */
  async findVm(name: string, network?: string): Promise<{ vm: Vm; entry: KvEntry }> {
    if (network) {
      const entry = await this.kv.get(this.keys.vm(network, name));
      if (!entry) throw notFound(`VM "${name}" does not exist in network "${network}"`);
      return { vm: decode(VmSchema, entry), entry };
    }
    const matches = (await this.kv.range(this.keys.vms)).entries.filter((e) => e.key.endsWith(`/${name}`) && this.keys.parse(e.key)?.parts[1] === name);
    if (!matches.length) throw notFound(`VM "${name}" does not exist`);
    if (matches.length > 1) throw invalid(`VM name "${name}" exists in several networks; name one with --network`);
    return { vm: decode(VmSchema, matches[0]), entry: matches[0] };
  }

  async addVm(input: Omit<VmPatch, 'mac'> & { name: string; network: string; mac?: string }): Promise<Vm> {
    const givenMac = input.mac;
    for (let attempt = 0; attempt < MAC_ATTEMPTS; attempt++) {
      const { network, entry: netEntry } = await this.getNetwork(input.network);
      if (input.owner) await this.getUser(input.owner);
      const vm = validate(VmSchema, {
        v: 1, id: randomUUID(), createdAt: new Date().toISOString(), ...input,
        mac: givenMac ?? randomLocalMac(),
        resources: input.resources ?? {},
      }, 'VM');
      this.checkAddresses(vm, network);
      const claims = this.claims(vm, network);
      const compares: KvCompare[] = [
        { key: netEntry.key, modRevision: netEntry.modRevision },
        { key: this.keys.vm(vm.network, vm.name), modRevision: 0 },
        ...claims.map((c) => ({ key: c.key, modRevision: 0 })),
      ];
      const r = await this.kv.txn({
        compares,
        puts: [{ key: this.keys.vm(vm.network, vm.name), value: JSON.stringify(vm) }, ...claims],
        deletes: [],
      });
      if (r.succeeded) return vm;
      // Find out which compare failed, and either name it or retry with a fresh MAC.
      if (await this.kv.get(this.keys.vm(vm.network, vm.name))) throw exists(`VM "${vm.name}" already exists in network "${vm.network}"`);
      const macHolder = await this.kv.get(claims[0].key);
      if (macHolder && givenMac) throw this.claimTaken(claims[0].key, macHolder);
      if (!macHolder) await this.throwIfClaimed(claims.slice(1));
      // otherwise: the network changed, or a random MAC collided; go again
    }
    throw new StoreError('conflict', `could not create VM "${input.name}": the store kept changing; try again`);
  }

  /**
   * Changes the fields a patch names and nothing else. A function patch is applied to the
   * current record inside the CAS loop, so concurrent edits of different fields all land.
   */
  async setVm(name: string, network: string | undefined, patchOrFn: VmPatch | ((current: Vm) => VmPatch)): Promise<Vm> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const { vm: current, entry } = await this.findVm(name, network);
      const patch = typeof patchOrFn === 'function' ? patchOrFn(current) : patchOrFn;
      const { network: net, entry: netEntry } = await this.getNetwork(current.network);
      if (patch.owner) await this.getUser(patch.owner);
      const next = validate(VmSchema, {
        ...current, ...stripUndefined(patch),
        resources: { ...current.resources, ...stripUndefined(patch.resources ?? {}) },
      }, 'VM');
      this.checkAddresses(next, net);
      const before = new Set(this.claims(current, net).map((c) => c.key));
      const after = this.claims(next, net);
      const added = after.filter((c) => !before.has(c.key));
      const removed = [...before].filter((k) => !after.some((c) => c.key === k));
      const r = await this.kv.txn({
        compares: [
          { key: entry.key, modRevision: entry.modRevision },
          { key: netEntry.key, modRevision: netEntry.modRevision },
          ...added.map((c) => ({ key: c.key, modRevision: 0 })),
        ],
        puts: [{ key: entry.key, value: JSON.stringify(next) }, ...added],
        deletes: removed,
      });
      if (r.succeeded) return next;
      await this.throwIfClaimed(added);
    }
    throw new StoreError('conflict', `VM "${name}" kept changing under us; try again`);
  }

  async removeVm(name: string, network?: string): Promise<Vm> {
    for (let i = 0; i < CAS_ATTEMPTS; i++) {
      const { vm, entry } = await this.findVm(name, network);
      const { network: net } = await this.getNetwork(vm.network);
      const r = await this.kv.txn({
        compares: [{ key: entry.key, modRevision: entry.modRevision }],
        puts: [],
        deletes: [entry.key, this.keys.vmState(vm.network, vm.name), ...this.claims(vm, net).map((c) => c.key)],
      });
      if (r.succeeded) return vm;
    }
    throw new StoreError('conflict', `VM "${name}" kept changing under us; try again`);
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

  /**
   * The index keys a VM holds: its MAC first, then its EUI-64 address and each explicit one, so
   * that no two VMs can ever answer to the same address (the metadata service's identity rests on it).
   */
  private claims(vm: Vm, network: Network): { key: string; value: string }[] {
    const owner = `${vm.network}/${vm.name}`;
    const derived = eui64Address(parsePrefix(network.prefix6, 6)!, vm.mac);
    return [
      { key: this.keys.mac(vm.mac), value: owner },
      ...[derived, ...vm.addresses].map((a) => ({ key: this.keys.address(a), value: owner })),
    ];
  }

  private checkAddresses(vm: Vm, network: Network): void {
    const derived = eui64Address(parsePrefix(network.prefix6, 6)!, vm.mac);
    for (const a of vm.addresses) {
      const addr = parseAddress(a)!;
      const prefix = addr.kind() === 'ipv6' ? network.prefix6 : network.prefix4;
      if (!prefix) throw invalid(`address ${a}: network "${network.name}" has no IPv4 prefix`);
      checkInside(a, prefix, 'address');
      if (a === network.metadata6 || a === network.metadata4) throw invalid(`address ${a} is the metadata service's own`);
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
