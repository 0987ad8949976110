// The in-memory registry: everything DNS and HTTP need, indexed for O(1) lookups, fed by a
// StateSource (etcd watch or state file). It never talks to the store itself: when the store is
// away it simply keeps the last good state.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { KvChange, KvEntry, StateSink } from '../store/kv.js';
import { Keys, type ParsedKey } from '../store/keys.js';
import {
  HostNetworkSchema, HostSchema, NetworkSchema, UserSchema, VmSchema, VmStateSchema, GuestAttributesSchema, describeIssues,
  type GuestAttributes, type Host, type Network, type User, type Vm, type VmState,
} from '../model/schema.js';
import { parseAddress, parsePrefix, prefixContains, reverseZones, type IPAddress, type Prefix } from '../model/ip.js';
import { canonicalVm } from './canonical-vm.js';
import { eui64AddressIn, eui64Prefix, type Eui64Prefix } from '../model/eui64.js';
import { parseJson } from '../store/json.js';

export interface NetworkView {
  network: Network;
  /** The /64 half of prefix6, ready for building EUI-64 addresses. */
  readonly slaac?: Eui64Prefix;
  prefix6: Prefix;
  prefix4?: Prefix;
  /** ip6.arpa (and in-addr.arpa) zones this network answers PTR for, without trailing dot. */
  reverseZones: string[];
  /** Where hosts may route its guests, resolved to prefixes (from a host copy: the agent's registry only). */
  forward?: { v6: string[]; v4: string[] };
}

export interface VmView {
  /** "<network>/<name>" */
  key: string;
  vm: Vm;
  network: Network;
  owner?: User;
  /** "<name>.<domain>" */
  readonly fqdn: string;
  /** The EUI-64 address first, then explicit ones. */
  addresses6: string[];
  addresses4: string[];
  /** The owner's keys, then the VM's own: what `/keys` serves. */
  authorizedKeys: string[];
  /** Highest mod revision among the VM, its network and its owner: changes whenever its metadata does. */
  revision: number;
}

export interface RegistryChange {
  generation: number;
  revision: number;
  /** Keys of the VMs whose view changed or vanished. Empty with `all`. */
  vms: string[];
  /** Everything may have changed (a reload). */
  all: boolean;
  networksChanged: boolean;
}

export interface RegistryOptions {
  prefix?: string;
  /** Serve only these networks (default: all). */
  networks?: string[];
  /**
   * Where VMs come from: their records (the appliance), or the launch specs on a host (the agent,
   * which never sees user-data). Default: records.
   */
  vmsFrom?: 'records' | 'launch';
  log: Logger;
}

interface Rec<T> { value: T; mod: number }
/** A VM record and, once its network is served, its view: one map entry per VM. */
interface VmEntry extends Rec<Vm> { view?: VmView }

/**
 * The one empty list every VM without addresses or keys of its own shares (most VMs): an array
 * per VM per list was a third of the registry's objects at 100,000 VMs. Frozen, so a caller that
 * tried to add to it would throw instead of changing every VM.
 */
const NONE: string[] = Object.freeze([]) as unknown as string[];
interface UserRec extends Rec<User> {
  /** The stored text, to tell a re-put from a change. */
  text: string;
  /** The user's key texts, shared by the views of all their VMs. */
  keyTexts: string[];
}

/**
 * The views the registry builds: the name is put together when asked rather than kept (a string
 * per VM; renders that use it are cached, DNS answers too).
 */
class View implements VmView {
  constructor(
    public key: string, public vm: Vm, public network: Network, public owner: User | undefined,
    public addresses6: string[], public addresses4: string[], public authorizedKeys: string[], public revision: number,
  ) {}
  get fqdn(): string { return `${this.vm.name}.${this.network.domain}`; }
}

/** Adds to / removes from a Map of Sets (the owner and network indexes of VM keys). */
function addTo(index: Map<string, Set<string>>, name: string, key: string): void {
  let set = index.get(name);
  if (!set) index.set(name, (set = new Set()));
  set.add(key);
}
function removeFrom(index: Map<string, Set<string>>, name: string | undefined, key: string): void {
  if (name === undefined) return;
  const set = index.get(name);
  if (set?.delete(key) && set.size === 0) index.delete(name);
}

export class Registry extends EventEmitter implements StateSink {
  readonly keys: Keys;
  loaded = false;
  revision = 0;
  generation = 0;
  skipped = 0;
  /** The store's layout marker (keys.ts), once read; undefined: none (layout 1, or an empty store). */
  layout?: number;

  private networksByName = new Map<string, NetworkView>();
  private networksByDomain = new Map<string, NetworkView>();
  private networkMods = new Map<string, number>();
  /** The stored text of each network (or host copy), to tell a re-put from a change. */
  private networkTexts = new Map<string, string>();
  /** Owner copies by "<network>/<user>": a VM's owner is the copy in its own network. */
  private users = new Map<string, UserRec>();
  /**
   * Every VM record by "<network>/<name>", with its view. One map for both (a map of 100,000
   * entries is 3.5 MiB); names are found through it too (vmByFqdn), not through a map of their own.
   */
  private vms = new Map<string, VmEntry>();
  private viewCount = 0;
  /**
   * VM keys by "<network>/<owner>" (records, whether or not they have a view): re-indexing after
   * an owner's keys change touches only theirs. A network change, rare, scans `vms` instead.
   */
  private vmsByOwner = new Map<string, Set<string>>();
  private byAddress = new Map<string, VmView>();
  private byMac = new Map<string, VmView>();
  private vmStates = new Map<string, VmState>();
  /** Guest attributes by VM key, as the guest reported them (kept apart from the VM's view: they change often). */
  private attributes = new Map<string, GuestAttributes>();
  private hostsByName = new Map<string, Host>();
  private readonly only?: Set<string>;
  /** The appliance reads network and VM records; the agent its host's copies and launch specs. */
  private readonly networkKind: 'network' | 'host-network';
  private readonly vmKind: 'vm' | 'launch';

  constructor(private readonly opts: RegistryOptions) {
    super();
    this.setMaxListeners(0);
    this.keys = new Keys(opts.prefix);
    this.only = opts.networks?.length ? new Set(opts.networks) : undefined;
    this.networkKind = opts.vmsFrom === 'launch' ? 'host-network' : 'network';
    this.vmKind = opts.vmsFrom === 'launch' ? 'launch' : 'vm';
  }

  // ---- lookups (all O(1) but the prefix scan over networks, which are few) ----

  vmByAddress(address: string): VmView | undefined {
    return this.byAddress.get(address) ?? this.byAddress.get(parseAddress(address)?.toString() ?? '');
  }
  vmByMac(mac: string): VmView | undefined { return this.byMac.get(mac.toLowerCase()); }
  vmByName(network: string, name: string): VmView | undefined { return this.vms.get(`${network}/${name.toLowerCase()}`)?.view; }
  /** The VM named by "<name>.<its network's domain>" (a VM name is one label). */
  vmByFqdn(fqdn: string): VmView | undefined {
    const name = fqdn.toLowerCase().replace(/\.$/, '');
    const dot = name.indexOf('.');
    const net = dot > 0 ? this.networksByDomain.get(name.slice(dot + 1)) : undefined;
    return net && this.vms.get(`${net.network.name}/${name.slice(0, dot)}`)?.view;
  }
  vmByKey(key: string): VmView | undefined { return this.vms.get(key)?.view; }
  network(name: string): NetworkView | undefined { return this.networksByName.get(name); }
  networkByDomain(domain: string): NetworkView | undefined { return this.networksByDomain.get(domain.toLowerCase().replace(/\.$/, '')); }
  networks(): NetworkView[] { return [...this.networksByName.values()]; }
  *allVms(): IterableIterator<VmView> {
    for (const e of this.vms.values()) if (e.view) yield e.view;
  }
  get vmCount(): number { return this.viewCount; }
  /** The owner record VMs of `network` see. */
  owner(network: string, name: string): User | undefined { return this.users.get(`${network}/${name}`)?.value; }
  vmState(key: string): VmState | undefined { return this.vmStates.get(key); }
  /** The guest attributes of a VM ("<network>/<name>"), only if they were written for this very VM. */
  guestAttributes(key: string): GuestAttributes['namespaces'] | undefined {
    const a = this.attributes.get(key);
    return a && a.vmId === this.vms.get(key)?.view?.vm.id ? a.namespaces : undefined;
  }
  hosts(): Host[] { return [...this.hostsByName.values()]; }

  /** The served network whose IPv6 or IPv4 prefix holds this address. */
  networkForAddress(addr: IPAddress): NetworkView | undefined {
    for (const n of this.networksByName.values()) {
      if (prefixContains(n.prefix6, addr) || (n.prefix4 && prefixContains(n.prefix4, addr))) return n;
    }
    return undefined;
  }

  // ---- StateSink ----

  reset(entries: KvEntry[], revision: number): void {
    this.networksByName = new Map();
    this.networksByDomain = new Map();
    this.networkMods = new Map();
    this.networkTexts = new Map();
    this.users = new Map();
    this.vms = new Map();
    this.viewCount = 0;
    this.vmsByOwner = new Map();
    this.byAddress = new Map();
    this.byMac = new Map();
    this.vmStates = new Map();
    this.attributes = new Map();
    this.hostsByName = new Map();
    this.layout = undefined;
    // All records first, VM views after, so they are built in one pass (and once).
    for (const e of entries) this.put(e.key, e.value, e.modRevision, false);
    for (const key of this.vms.keys()) this.indexVm(key);
    this.revision = revision;
    this.loaded = true;
    this.emitChange([], true, true);
  }

  apply(changes: KvChange[], revision: number): void {
    const touched = new Set<string>();
    let networksChanged = false;
    for (const c of changes) {
      const r = c.value === undefined ? this.remove(c.key) : this.put(c.key, c.value, c.modRevision, true);
      for (const k of r.vms) touched.add(k);
      networksChanged ||= r.networks;
    }
    this.revision = Math.max(this.revision, revision);
    if (touched.size || networksChanged) this.emitChange([...touched], false, networksChanged);
  }

  // ---- internals ----

  private emitChange(vms: string[], all: boolean, networksChanged: boolean): void {
    this.generation++;
    const change: RegistryChange = { generation: this.generation, revision: this.revision, vms, all, networksChanged };
    this.emit('change', change);
  }

  private decode<S extends z.ZodType>(schema: S, key: string, value: string, fast?: (json: unknown) => z.output<S> | undefined): z.output<S> | undefined {
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch {
      this.skip(key, 'not JSON');
      return undefined;
    }
    const canonical = fast?.(json);
    if (canonical) return canonical;
    const r = schema.safeParse(json);
    if (!r.success) {
      this.skip(key, describeIssues(r.error));
      return undefined;
    }
    return r.data;
  }

  private skip(key: string, why: string): void {
    this.skipped++;
    this.opts.log.warn({ key, why }, 'skipping invalid record');
  }

  /** Stores one record; with `index`, re-indexes what depends on it and returns what changed. */
  private put(key: string, value: string, mod: number, index: boolean): { vms: string[]; networks: boolean } {
    const k = this.keys.parse(key);
    const none = { vms: [], networks: false };
    if (!k) return none;
    return this.putParsed(k, key, value, mod, index);
  }

  private putParsed(k: ParsedKey, key: string, value: string, mod: number, index: boolean): { vms: string[]; networks: boolean } {
    const none = { vms: [], networks: false };
    switch (k.kind) {
      case 'layout': {
        const v = (parseJson(value) as { v?: unknown } | undefined)?.v;
        const before = this.layout;
        this.layout = typeof v === 'number' ? v : undefined;
        // Readers refuse or wait on a layout they do not read: a new one is news to all of them.
        return { vms: [], networks: index && this.layout !== before };
      }
      case 'network':
      case 'host-network': {
        if (k.kind !== this.networkKind) return none;
        const name = k.parts[k.parts.length - 1]; // networks/<name>, hosts/<host>/networks/<name>
        if (this.only && !this.only.has(name)) return none;
        // The writer re-puts a network unchanged when its first VM lands on a host: nothing changes.
        if (this.networkTexts.get(name) === value) return none;
        const copy = k.kind === 'host-network' ? this.decode(HostNetworkSchema, key, value) : undefined;
        const n = k.kind === 'host-network' ? copy?.network : this.decode(NetworkSchema, key, value);
        if (!n || n.name !== name) return n ? (this.skip(key, 'name does not match key'), this.remove(key)) : this.remove(key);
        const old = this.networksByName.get(n.name);
        if (old) this.networksByDomain.delete(old.network.domain);
        const prefix6 = parsePrefix(n.prefix6, 6)!;
        const prefix4 = n.prefix4 ? parsePrefix(n.prefix4, 4) : undefined;
        const view: NetworkView = {
          network: n, prefix6, prefix4, slaac: eui64Prefix(prefix6),
          reverseZones: [...reverseZones(prefix6), ...(prefix4 ? reverseZones(prefix4) : [])],
          ...(copy ? { forward: { v6: copy.forward6, v4: copy.forward4 } } : {}),
        };
        this.networksByName.set(n.name, view);
        this.networksByDomain.set(n.domain, view);
        this.networkMods.set(n.name, mod);
        this.networkTexts.set(n.name, value);
        return { vms: index ? this.reindex(this.vmsOf(n.name)) : [], networks: true };
      }
      case 'guest-attributes': {
        const [network, name] = k.parts;
        if (this.only && !this.only.has(network)) return none;
        const a = this.decode(GuestAttributesSchema, key, value);
        const vkey = `${network}/${name}`;
        if (a) this.attributes.set(vkey, a);
        else this.attributes.delete(vkey);
        return { vms: [vkey], networks: false };
      }
      case 'owner': {
        const [network, name] = k.parts;
        if (this.only && !this.only.has(network)) return none;
        const okey = `${network}/${name}`;
        // The writer re-puts a copy unchanged when a VM joins: that changes nothing any VM serves.
        if (this.users.get(okey)?.text === value) return none;
        const u = this.decode(UserSchema, key, value);
        if (!u || u.name !== name) return u ? (this.skip(key, 'name does not match key'), this.remove(key)) : this.remove(key);
        this.users.set(okey, { value: u, mod, text: value, keyTexts: u.keys.map((uk) => uk.key) });
        return { vms: index ? this.reindex(this.vmsByOwner.get(okey)) : [], networks: false };
      }
      case 'vm':
      case 'launch': {
        if (k.kind !== this.vmKind) return none;
        const [network, name] = k.parts.slice(-2); // vms/<network>/<name>, hosts/<host>/vms/<network>/<name>
        const vm = this.decode(VmSchema, key, value, canonicalVm);
        const vkey = `${network}/${name}`;
        if (!vm || vm.network !== network || vm.name !== name || (k.kind === 'launch' && vm.host !== k.parts[0])) {
          if (vm) this.skip(key, 'name, network or host does not match key');
          return this.remove(key);
        }
        if (this.only && !this.only.has(vm.network)) return none;
        if (vm.addresses.length === 0) vm.addresses = NONE;
        if (vm.sshKeys.length === 0) vm.sshKeys = NONE;
        this.forgetVmRecord(vkey);
        // `view` from the start: added later, it would move the entry to a new shape with its
        // properties out of line (a PropertyArray per VM).
        this.vms.set(vkey, { value: vm, mod, view: undefined });
        if (vm.owner !== undefined) addTo(this.vmsByOwner, `${vm.network}/${vm.owner}`, vkey);
        if (index) this.indexVm(vkey);
        return { vms: [vkey], networks: false };
      }
      case 'vm-state': {
        const s = this.decode(VmStateSchema, key, value);
        if (s) this.vmStates.set(`${k.parts[1]}/${k.parts[2]}`, s);
        return none;
      }
      case 'host': {
        const h = this.decode(HostSchema, key, value);
        if (h) this.hostsByName.set(k.parts[0], h);
        return none;
      }
      default:
        return none;
    }
  }

  private remove(key: string): { vms: string[]; networks: boolean } {
    const k = this.keys.parse(key);
    if (!k) return { vms: [], networks: false };
    switch (k.kind) {
      case 'layout': {
        const had = this.layout !== undefined;
        this.layout = undefined;
        return { vms: [], networks: had };
      }
      case 'network':
      case 'host-network': {
        if (k.kind !== this.networkKind) return { vms: [], networks: false };
        const name = k.parts[k.parts.length - 1];
        const old = this.networksByName.get(name);
        if (!old) return { vms: [], networks: false };
        this.networksByName.delete(name);
        this.networksByDomain.delete(old.network.domain);
        this.networkMods.delete(name);
        this.networkTexts.delete(name);
        return { vms: this.reindex(this.vmsOf(name)), networks: true };
      }
      case 'guest-attributes': {
        const vkey = `${k.parts[0]}/${k.parts[1]}`;
        return { vms: this.attributes.delete(vkey) ? [vkey] : [], networks: false };
      }
      case 'owner': {
        const okey = `${k.parts[0]}/${k.parts[1]}`;
        if (!this.users.delete(okey)) return { vms: [], networks: false };
        return { vms: this.reindex(this.vmsByOwner.get(okey)), networks: false };
      }
      case 'vm':
      case 'launch': {
        if (k.kind !== this.vmKind) return { vms: [], networks: false };
        const vkey = k.parts.slice(-2).join('/');
        if (!this.vms.has(vkey)) return { vms: [], networks: false };
        this.forgetVmRecord(vkey);
        return { vms: [vkey], networks: false };
      }
      case 'vm-state':
        this.vmStates.delete(`${k.parts[1]}/${k.parts[2]}`);
        return { vms: [], networks: false };
      case 'host':
        this.hostsByName.delete(k.parts[0]);
        return { vms: [], networks: false };
      default:
        return { vms: [], networks: false };
    }
  }

  /** Drops a VM record, its view and its owner index entry. */
  private forgetVmRecord(key: string): void {
    const old = this.vms.get(key);
    if (!old) return;
    this.unindexVm(key);
    this.vms.delete(key);
    if (old.value.owner !== undefined) removeFrom(this.vmsByOwner, `${old.value.network}/${old.value.owner}`, key);
  }

  /** The keys of a network's VM records: a scan of every record, for a network change (rare). */
  private vmsOf(network: string): string[] {
    const out: string[] = [];
    for (const [key, e] of this.vms) if (e.value.network === network) out.push(key);
    return out;
  }

  private reindex(keys: Iterable<string> | undefined): string[] {
    if (!keys) return [];
    const out = [...keys];
    for (const key of out) this.indexVm(key);
    return out;
  }

  private unindexVm(key: string): void {
    const entry = this.vms.get(key);
    const old = entry?.view;
    if (!old) return;
    entry.view = undefined;
    this.viewCount--;
    for (const a of old.addresses6) if (this.byAddress.get(a) === old) this.byAddress.delete(a);
    for (const a of old.addresses4) if (this.byAddress.get(a) === old) this.byAddress.delete(a);
    if (this.byMac.get(old.vm.mac) === old) this.byMac.delete(old.vm.mac);
  }

  /** (Re)builds one VM's view; a VM whose network is not served has no view. */
  private indexVm(key: string): void {
    this.unindexVm(key);
    const rec = this.vms.get(key);
    if (!rec) return;
    const vm = rec.value;
    const net = this.networksByName.get(vm.network);
    if (!net) return;
    const owner = vm.owner ? this.users.get(`${vm.network}/${vm.owner}`) : undefined;
    const addresses6 = [eui64AddressIn(net.slaac!, vm.mac)];
    let addresses4 = NONE;
    for (const text of vm.addresses) {
      const a = parseAddress(text)!;
      if (a.kind() === 'ipv6') addresses6.push(a.toString());
      else (addresses4 === NONE ? (addresses4 = []) : addresses4).push(a.toString());
    }
    const ownerKeys = owner?.keyTexts ?? [];
    const view = new View(
      key, vm, net.network, owner?.value, addresses6, addresses4,
      // Most VMs carry no keys of their own: they share their owner's list (never mutated).
      vm.sshKeys.length ? [...ownerKeys, ...vm.sshKeys] : ownerKeys,
      Math.max(rec.mod, owner?.mod ?? 0, this.networkMods.get(vm.network) ?? 0),
    );
    rec.view = view;
    this.viewCount++;
    for (const a of addresses6) this.byAddress.set(a, view);
    for (const a of addresses4) this.byAddress.set(a, view);
    this.byMac.set(vm.mac, view);
  }
}
