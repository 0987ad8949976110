// The authoritative data, built from the registry: per served network a forward zone (its search
// domain: apex SOA/NS, `metadata`, one name per VM) and its reverse zones (PTR for the metadata
// address and every VM address). Built whole when networks change; a VM change only replaces that
// VM's own records (what it contributed is remembered), so 100,000 VMs cost nothing per change.
// Lookups are map hits.
import type { NetworkView, Registry, VmView } from '../registry/registry.js';
import { parseAddress, reverseName } from '../model/ip.js';
import { TYPE, RCODE, encodeName } from './wire.js';

export interface Rr {
  /** Owner name, lower-case, no trailing dot. */
  name: string;
  type: number;
  ttl: number;
  rdata: Buffer;
}

export interface AuthAnswer {
  rcode: number;
  answer: Rr[];
  authority: Rr[];
  additional: Rr[];
}

type Node = Map<number, Buffer[]>;

interface Zone {
  apex: string;
  /** Records by owner name. */
  nodes: Map<string, Node>;
  /** Empty non-terminals: names with no records but with descendants (NODATA, not NXDOMAIN), counted by descendant node. */
  ents: Map<string, number>;
  soa: Rr;
  /** Addresses of the NS target, sent as additional data. */
  glue: Rr[];
}

const SOA_REFRESH = 3600;
const SOA_RETRY = 600;
const SOA_EXPIRE = 86400;

/** One record a VM put into a zone, so that it can be taken out again. */
type Contribution = [zone: Zone, owner: string, type: number, rdata: Buffer];

export class Authority {
  private zones = new Map<string, Zone>();
  private metadataByNetwork = new Map<string, Node>();
  private byVm = new Map<string, Contribution[]>();
  /** Each network's SOA rdata, shared by its zones: the serial is rewritten in place on change. */
  private soas: Buffer[] = [];
  readonly ttl: number;

  constructor(registry: Registry, ttl: number) {
    this.ttl = ttl;
    const serial = registry.revision >>> 0;
    for (const net of registry.networks()) this.addNetwork(net, serial);
    for (const vm of registry.allVms()) this.addVm(vm);
  }

  /** Replaces the records of these VMs (keys "<network>/<name>") with what the registry holds now. */
  updateVms(registry: Registry, keys: Iterable<string>): void {
    for (const key of keys) {
      for (const [zone, owner, type, rdata] of this.byVm.get(key) ?? []) removeRecord(zone, owner, type, rdata);
      this.byVm.delete(key);
      const vm = registry.vmByKey(key);
      if (vm) this.addVm(vm);
    }
    // SERIAL sits 20 bytes from the end (then REFRESH, RETRY, EXPIRE, MINIMUM).
    for (const soa of this.soas) soa.writeUInt32BE(registry.revision >>> 0, soa.length - 20);
  }

  private addVm(vm: VmView): void {
    const zone = this.zones.get(vm.network.domain);
    if (!zone) return;
    const added: Contribution[] = [];
    const add = (z: Zone, owner: string, type: number, rdata: Buffer) => {
      if (addRecord(z, owner, type, rdata)) added.push([z, owner, type, rdata]);
    };
    // `metadata` wins over a VM that happens to share the name.
    if (vm.vm.name !== 'metadata') {
      for (const a of vm.addresses6) add(zone, vm.fqdn, TYPE.AAAA, addressBytes(a));
      for (const a of vm.addresses4) add(zone, vm.fqdn, TYPE.A, addressBytes(a));
    }
    for (const a of [...vm.addresses6, ...vm.addresses4]) {
      const ptr = this.ptrOwner(a);
      if (ptr) add(ptr.zone, ptr.owner, TYPE.PTR, encodeName(vm.fqdn));
    }
    if (added.length) this.byVm.set(vm.key, added);
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
    const node = zone.nodes.get(qname);
    const negative = (rcode: number): AuthAnswer => ({ rcode, answer: [], authority: [zone.soa], additional: [] });
    if (!node) return negative(zone.ents.has(qname) ? RCODE.NOERROR : RCODE.NXDOMAIN);
    const answer = recordsOf(node, qname, qtype, this.ttl);
    if (!answer.length) return negative(RCODE.NOERROR);
    const additional = qname === zone.apex && (qtype === TYPE.NS || qtype === TYPE.ANY) ? zone.glue : [];
    return { rcode: RCODE.NOERROR, answer, authority: [], additional };
  }

  /** The bare single-label `metadata.` for a client of `network`. */
  bareMetadata(network: string, qtype: number): AuthAnswer | undefined {
    const node = this.metadataByNetwork.get(network);
    if (!node) return undefined;
    return { rcode: RCODE.NOERROR, answer: recordsOf(node, 'metadata', qtype, this.ttl), authority: [], additional: [] };
  }

  private addNetwork(view: NetworkView, serial: number): void {
    const n = view.network;
    const target = `metadata.${n.domain}`;
    const soaRdata = Buffer.concat([
      encodeName(target), encodeName(`hostmaster.${n.domain}`),
      u32s(serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, this.ttl),
    ]);
    this.soas.push(soaRdata);
    const glue: Rr[] = [{ name: target, type: TYPE.AAAA, ttl: this.ttl, rdata: addressBytes(n.metadata6) }];
    if (n.metadata4) glue.push({ name: target, type: TYPE.A, ttl: this.ttl, rdata: addressBytes(n.metadata4) });
    for (const apex of [n.domain, ...view.reverseZones]) {
      const zone: Zone = {
        apex, nodes: new Map(), ents: new Map(), glue,
        // RFC 2308: the negative TTL is the smaller of the SOA's TTL and its MINIMUM; both are ours.
        soa: { name: apex, type: TYPE.SOA, ttl: this.ttl, rdata: soaRdata },
      };
      addRecord(zone, apex, TYPE.SOA, soaRdata);
      addRecord(zone, apex, TYPE.NS, encodeName(target));
      this.zones.set(apex, zone);
    }
    const fwd = this.zones.get(n.domain)!;
    addRecord(fwd, target, TYPE.AAAA, addressBytes(n.metadata6));
    if (n.metadata4) addRecord(fwd, target, TYPE.A, addressBytes(n.metadata4));
    this.metadataByNetwork.set(n.name, fwd.nodes.get(target)!);
    this.addPtr(n.metadata6, target);
    if (n.metadata4) this.addPtr(n.metadata4, target);
  }

  private addPtr(address: string, target: string): void {
    const ptr = this.ptrOwner(address);
    if (ptr) addRecord(ptr.zone, ptr.owner, TYPE.PTR, encodeName(target));
  }

  /** The reverse zone and owner name of an address, when one of our reverse zones holds it. */
  private ptrOwner(address: string): { zone: Zone; owner: string } | undefined {
    const addr = parseAddress(address);
    if (!addr) return undefined;
    const owner = reverseName(addr);
    const zone = this.zoneFor(owner);
    if (!zone || zone.apex === '' || !zone.apex.endsWith('arpa')) return undefined;
    return { zone, owner };
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

/** The names strictly between `owner` and the zone's apex. */
function* between(zone: Zone, owner: string): Generator<string> {
  for (let name = owner; name !== zone.apex; ) {
    const dot = name.indexOf('.');
    if (dot < 0) return;
    name = name.slice(dot + 1);
    if (name === zone.apex) return;
    yield name;
  }
}

/** Adds a record; false when the very same record was already there (it is not added twice). */
function addRecord(zone: Zone, owner: string, type: number, rdata: Buffer): boolean {
  let node = zone.nodes.get(owner);
  if (!node) {
    node = new Map();
    zone.nodes.set(owner, node);
    // Every name between the owner and the apex exists (RFC 8020): count the empty ones.
    for (const name of between(zone, owner)) zone.ents.set(name, (zone.ents.get(name) ?? 0) + 1);
  }
  const list = node.get(type) ?? [];
  if (list.some((r) => r.equals(rdata))) return false;
  list.push(rdata);
  node.set(type, list);
  return true;
}

function removeRecord(zone: Zone, owner: string, type: number, rdata: Buffer): void {
  const node = zone.nodes.get(owner);
  const list = node?.get(type);
  if (!node || !list) return;
  const rest = list.filter((r) => !r.equals(rdata));
  if (rest.length) node.set(type, rest);
  else node.delete(type);
  if (node.size) return;
  zone.nodes.delete(owner);
  for (const name of between(zone, owner)) {
    const n = (zone.ents.get(name) ?? 1) - 1;
    if (n > 0) zone.ents.set(name, n);
    else zone.ents.delete(name);
  }
}

function addressBytes(text: string): Buffer {
  return Buffer.from(parseAddress(text)!.toByteArray());
}

function u32s(...values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 4);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, i * 4));
  return b;
}
