// The authoritative data of every served network: its forward zone (the search domain: apex
// SOA/NS, `metadata`, one name per VM) and its reverse zones (PTR for the metadata address and
// every VM address).
//
// VM records are not copied into zones: a VM name or a reverse name is looked up in the registry
// when asked (the hot path caches the wire answer), so 100,000 VMs cost no zone memory and a VM
// change costs nothing here. What the zones keep per VM is one sorted key per address, so that
// an empty non-terminal in a reverse zone (a partial ip6.arpa name with VM addresses below it)
// answers NODATA, not NXDOMAIN (RFC 8020), in O(log n).
import type { NetworkView, Registry, VmView } from '../registry/registry.js';
import { parseAddress, reverseName } from '../model/ip.js';
import { metadataAddresses } from '../model/schema.js';
import { TYPE, RCODE, encodeName } from './wire.js';
import { HOSTKEYS_NAMESPACE, hostKeys, sshfpRecords } from '../model/hostkeys.js';

export interface Rr {
  /** Owner name, lower-case, no trailing dot. */
  name: string;
  type: number;
  /** IN unless given (CHAOS identity answers). */
  class?: number;
  ttl: number;
  rdata: Buffer;
}

export interface AuthAnswer {
  /** The network whose data this is (its dnsPublic setting decides who may see it). */
  network: string;
  rcode: number;
  answer: Rr[];
  authority: Rr[];
  additional: Rr[];
}

type Node = Map<number, Buffer[]>;

/** One family's reverse zones of a network: all cut at the same depth (see reverseZones). */
interface ReverseZones {
  keyLength: number;
  byKeyPrefix: Map<string, Zone>;
}

interface Zone {
  apex: string;
  kind: 'forward' | 'ip6' | 'ip4';
  network: string;
  /** Records that are not a VM's: apex SOA/NS, `metadata`, the metadata addresses' PTRs. */
  fixed: Map<string, Node>;
  /** Reverse zones: the address keys (see addressKey) of every name below the apex, sorted. */
  keys: string[];
  /** Reverse zones: the key prefix of the apex itself. */
  keyPrefix: string;
  soa: Rr;
  /** Addresses of the NS target, sent as additional data. */
  glue: Rr[];
}

const SOA_REFRESH = 3600;
const SOA_RETRY = 600;
const SOA_EXPIRE = 86400;

/**
 * An address as the reverse tree sees it, root first: 32 hex nibbles for IPv6, four 3-digit
 * octets for IPv4. A partial reverse name is then a prefix of the keys below it.
 */
function addressKey(address: string): { kind: 'ip6' | 'ip4'; key: string } | undefined {
  // Canonical IPv6 text (what the registry holds) expands without a parser: this runs per VM.
  if (address.includes(':') && !address.includes('.')) {
    const halves = address.split('::');
    if (halves.length <= 2) {
      const head = halves[0] ? halves[0].split(':') : [];
      const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
      const fill = halves.length === 2 ? 8 - head.length - tail.length : 0;
      const groups = [...head, ...new Array<string>(Math.max(fill, 0)).fill('0'), ...tail];
      if (groups.length === 8 && groups.every((g) => /^[0-9a-f]{1,4}$/.test(g))) return { kind: 'ip6', key: groups.map((g) => g.padStart(4, '0')).join('') };
    }
  }
  const a = parseAddress(address);
  if (!a) return undefined;
  const bytes = a.toByteArray();
  return a.kind() === 'ipv6'
    ? { kind: 'ip6', key: bytes.map((b) => b.toString(16).padStart(2, '0')).join('') }
    : { kind: 'ip4', key: bytes.map((b) => String(b).padStart(3, '0')).join('') };
}

/** The key prefix of a reverse name, or undefined when it is not a well-formed one. */
function reverseKey(labels: string[], kind: 'ip6' | 'ip4'): string | undefined {
  if (kind === 'ip6') return labels.every((l) => /^[0-9a-f]$/.test(l)) ? labels.slice().reverse().join('') : undefined;
  if (!labels.every((l) => /^(0|[1-9][0-9]{0,2})$/.test(l) && Number(l) < 256)) return undefined;
  return labels.slice().reverse().map((l) => l.padStart(3, '0')).join('');
}

function lowerBound(sorted: string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export class Authority {
  private zones = new Map<string, Zone>();
  private metadataByNetwork = new Map<string, Node>();
  /** The reverse-zone keys each VM added, so a change can take exactly those out again. */
  private keysByVm = new Map<string, [Zone, string][]>();
  /** Each network's reverse zones, by address family, found from an address key's first `keyLength` characters. */
  private reverseByNetwork = new Map<string, Partial<Record<'ip6' | 'ip4', ReverseZones>>>();
  /**
   * The reverse keys are only needed to tell an empty non-terminal from a missing name, a rare
   * question: they are built on the first one (a cold start with 100,000 VMs pays nothing) and
   * kept current from then on.
   */
  private keysBuilt = false;
  /** Each network's SOA rdata, shared by its zones: the serial is rewritten in place on change. */
  private soas: Buffer[] = [];
  readonly ttl: number;

  constructor(private readonly registry: Registry, ttl: number) {
    this.ttl = ttl;
    const serial = registry.revision >>> 0;
    for (const net of registry.networks()) this.addNetwork(net, serial);
  }

  private buildKeys(): void {
    this.keysBuilt = true;
    for (const vm of this.registry.allVms()) this.addVmKeys(vm, false);
    for (const z of this.zones.values()) z.keys.sort();
  }

  /** Follows a change of these VMs (keys "<network>/<name>"): only their reverse keys move. */
  updateVms(registry: Registry, keys: Iterable<string>): void {
    for (const key of this.keysBuilt ? keys : []) {
      for (const [zone, k] of this.keysByVm.get(key) ?? []) {
        const i = lowerBound(zone.keys, k);
        if (zone.keys[i] === k) zone.keys.splice(i, 1);
      }
      this.keysByVm.delete(key);
      const vm = registry.vmByKey(key);
      if (vm) this.addVmKeys(vm, true);
    }
    // SERIAL sits 20 bytes from the end (then REFRESH, RETRY, EXPIRE, MINIMUM).
    for (const soa of this.soas) soa.writeUInt32BE(registry.revision >>> 0, soa.length - 20);
  }

  /** The zone holding `qname`, by longest matching apex. */
  zoneFor(qname: string): Zone | undefined {
    let name = qname;
    for (;;) {
      const z = this.zones.get(name);
      if (z) return z;
      const dot = name.indexOf('.');
      if (dot < 0) return undefined;
      name = name.slice(dot + 1);
    }
  }

  /** True when some served zone contains `qname`: the answer is ours, never forwarded. */
  isAuthoritativeFor(qname: string): boolean {
    return this.zoneFor(qname) !== undefined;
  }

  lookup(qname: string, qtype: number): AuthAnswer | undefined {
    const zone = this.zoneFor(qname);
    if (!zone) return undefined;
    // A reverse name's position in the address tree, worked out once for both questions below.
    const key = zone.kind === 'forward' ? undefined : this.treeKey(zone, qname);
    const node = zone.fixed.get(qname) ?? (zone.kind === 'forward' ? this.vmName(zone, qname) : this.vmPtr(zone, key));
    const negative = (rcode: number): AuthAnswer => ({ network: zone.network, rcode, answer: [], authority: [zone.soa], additional: [] });
    if (!node) return negative(this.isEmptyNonTerminal(zone, key) ? RCODE.NOERROR : RCODE.NXDOMAIN);
    const answer = recordsOf(node, qname, qtype, this.ttl);
    if (!answer.length) return negative(RCODE.NOERROR);
    const additional = qname === zone.apex && (qtype === TYPE.NS || qtype === TYPE.ANY) ? zone.glue : [];
    return { network: zone.network, rcode: RCODE.NOERROR, answer, authority: [], additional };
  }

  /**
   * A name that means "my network's metadata service" whichever network asks: the bare
   * single-label `metadata.`, or `metadata.google.internal.` (GCE clients hard-code it). Each is
   * answered as the apex of a zone of its own (SOA, NS, AAAA, A), so a NODATA answer carries the
   * SOA a stub resolver needs to cache it (RFC 2308 §5).
   */
  clientMetadata(network: string, owner: string, qtype: number): AuthAnswer | undefined {
    const node = this.metadataByNetwork.get(network);
    if (!node) return undefined;
    const answer = recordsOf(node, owner, qtype, this.ttl);
    const soa: Rr = { name: owner, type: TYPE.SOA, ttl: this.ttl, rdata: node.get(TYPE.SOA)![0] };
    return { network, rcode: RCODE.NOERROR, answer, authority: answer.length ? [] : [soa], additional: [] };
  }

  /** A VM's address records under its name, straight from the registry. */
  private vmName(zone: Zone, qname: string): Node | undefined {
    const vm = this.registry.vmByFqdn(qname);
    // `metadata` wins over a VM that happens to share the name.
    if (!vm || vm.vm.network !== zone.network || vm.vm.name === 'metadata') return undefined;
    const node: Node = new Map();
    if (vm.addresses6.length) node.set(TYPE.AAAA, vm.addresses6.map(addressBytes));
    if (vm.addresses4.length) node.set(TYPE.A, vm.addresses4.map(addressBytes));
    // The host keys the guest published (guest attributes hostkeys/), as SSHFP (RFC 4255, SHA-256).
    const sshfp = sshfpRecords(hostKeys(this.registry.guestAttributes(vm.key)?.[HOSTKEYS_NAMESPACE]));
    if (sshfp.length) node.set(TYPE.SSHFP, sshfp.map((r) => Buffer.concat([Buffer.from([r.algorithm, r.fpType]), r.fingerprint])));
    return node;
  }

  /** The address key (see addressKey) a reverse name stands for, whole or partial; undefined when malformed. */
  private treeKey(zone: Zone, qname: string): string | undefined {
    if (qname === zone.apex) return zone.keyPrefix;
    const below = reverseKey(qname.slice(0, qname.length - zone.apex.length - 1).split('.'), zone.kind as 'ip6' | 'ip4');
    return below === undefined ? undefined : zone.keyPrefix + below;
  }

  /** The PTR of the VM whose whole address `key` is, straight from the registry. */
  private vmPtr(zone: Zone, key: string | undefined): Node | undefined {
    if (key === undefined || key.length !== (zone.kind === 'ip6' ? 32 : 12)) return undefined;
    const address = zone.kind === 'ip6' ? key.match(/.{4}/g)!.join(':') : key.match(/.{3}/g)!.map(Number).join('.');
    const vm = this.registry.vmByAddress(address);
    if (!vm || vm.vm.network !== zone.network) return undefined;
    return new Map([[TYPE.PTR, [encodeName(vm.fqdn)]]]);
  }

  /** A partial reverse name with addresses below it exists, with no records of its own. */
  private isEmptyNonTerminal(zone: Zone, key: string | undefined): boolean {
    if (key === undefined || key === zone.keyPrefix) return false;
    if (!this.keysBuilt) this.buildKeys();
    const i = lowerBound(zone.keys, key);
    return i < zone.keys.length && zone.keys[i].startsWith(key) && zone.keys[i] !== key;
  }

  private addVmKeys(vm: VmView, sorted: boolean): void {
    const added: [Zone, string][] = [];
    const zones = this.reverseByNetwork.get(vm.vm.network);
    for (const a of [...vm.addresses6, ...vm.addresses4]) {
      const k = addressKey(a);
      // Every VM address lies inside its network's prefix (the writer checks), so inside one of
      // the reverse zones cut at or below that prefix.
      const family = k && zones?.[k.kind];
      const zone = family && family.byKeyPrefix.get(k.key.slice(0, family.keyLength));
      if (!k || !zone) continue;
      if (sorted) zone.keys.splice(lowerBound(zone.keys, k.key), 0, k.key);
      else zone.keys.push(k.key);
      added.push([zone, k.key]);
    }
    if (added.length) this.keysByVm.set(vm.key, added);
  }

  private reverseZoneOf(address: string): Zone | undefined {
    const addr = parseAddress(address);
    if (!addr) return undefined;
    const zone = this.zoneFor(reverseName(addr));
    return zone && zone.kind !== 'forward' ? zone : undefined;
  }

  private addNetwork(view: NetworkView, serial: number): void {
    const n = view.network;
    const target = `metadata.${n.domain}`;
    const soaRdata = Buffer.concat([
      encodeName(target), encodeName(`hostmaster.${n.domain}`),
      u32s(serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, this.ttl),
    ]);
    this.soas.push(soaRdata);
    const replicas = metadataAddresses(n);
    const glue: Rr[] = [
      ...replicas.v6.map((a) => ({ name: target, type: TYPE.AAAA, ttl: this.ttl, rdata: addressBytes(a) })),
      ...replicas.v4.map((a) => ({ name: target, type: TYPE.A, ttl: this.ttl, rdata: addressBytes(a) })),
    ];
    for (const apex of [n.domain, ...view.reverseZones]) {
      // Two networks whose zones collide (a store the writer's checks did not guard): the first
      // keeps its zone rather than losing every record to the second.
      if (this.zones.has(apex)) continue;
      const zone: Zone = {
        apex, network: n.name, fixed: new Map(), keys: [], keyPrefix: '', glue,
        kind: apex.endsWith('.ip6.arpa') ? 'ip6' : apex.endsWith('.in-addr.arpa') ? 'ip4' : 'forward',
        // RFC 2308: the negative TTL is the smaller of the SOA's TTL and its MINIMUM; both are ours.
        soa: { name: apex, type: TYPE.SOA, ttl: this.ttl, rdata: soaRdata },
      };
      addRecord(zone, apex, TYPE.SOA, soaRdata);
      addRecord(zone, apex, TYPE.NS, encodeName(target));
      this.zones.set(apex, zone);
      if (zone.kind !== 'forward') {
        const labels = apex.split('.');
        zone.keyPrefix = reverseKey(labels.slice(0, labels.length - 2), zone.kind) ?? '';
        const families = this.reverseByNetwork.get(n.name) ?? {};
        const family = (families[zone.kind] ??= { keyLength: zone.keyPrefix.length, byKeyPrefix: new Map() });
        family.byKeyPrefix.set(zone.keyPrefix, zone);
        this.reverseByNetwork.set(n.name, families);
      }
    }
    const fwd = this.zones.get(n.domain)!;
    if (fwd.network !== n.name) return;
    for (const a of replicas.v6) addRecord(fwd, target, TYPE.AAAA, addressBytes(a));
    for (const a of replicas.v4) addRecord(fwd, target, TYPE.A, addressBytes(a));
    this.metadataByNetwork.set(n.name, new Map([...fwd.fixed.get(target)!, [TYPE.SOA, [soaRdata]], [TYPE.NS, [encodeName(target)]]]));
    for (const a of [...replicas.v6, ...replicas.v4]) {
      const zone = this.reverseZoneOf(a);
      const k = addressKey(a);
      if (!zone || !k || zone.network !== n.name) continue;
      addRecord(zone, reverseName(parseAddress(a)!), TYPE.PTR, encodeName(target));
      zone.keys.push(k.key);
    }
  }
}

function recordsOf(node: Node, owner: string, qtype: number, ttl: number): Rr[] {
  const out: Rr[] = [];
  for (const [type, rdatas] of node) {
    if (qtype !== TYPE.ANY && qtype !== type) continue;
    for (const rdata of rdatas) out.push({ name: owner, type, ttl, rdata });
  }
  return out;
}

function addRecord(zone: Zone, owner: string, type: number, rdata: Buffer): void {
  let node = zone.fixed.get(owner);
  if (!node) {
    node = new Map();
    zone.fixed.set(owner, node);
  }
  const list = node.get(type) ?? [];
  if (!list.some((r) => r.equals(rdata))) list.push(rdata);
  node.set(type, list);
}

function addressBytes(text: string): Buffer {
  return Buffer.from(parseAddress(text)!.toByteArray());
}

function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}
