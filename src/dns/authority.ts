// The authoritative data, built from the registry: per served network a forward zone (its search
// domain: apex SOA/NS, `metadata`, one name per VM) and its reverse zones (PTR for the metadata
// address and every VM address). Rebuilt whole after a registry change; lookups are map hits.
import type { NetworkView, Registry } from '../registry/registry.js';
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
  /** Empty non-terminals: names with no records but with descendants (NODATA, not NXDOMAIN). */
  ents: Set<string>;
  soa: Rr;
  /** Addresses of the NS target, sent as additional data. */
  glue: Rr[];
}

const SOA_REFRESH = 3600;
const SOA_RETRY = 600;
const SOA_EXPIRE = 86400;

export class Authority {
  private zones = new Map<string, Zone>();
  private metadataByNetwork = new Map<string, Node>();
  readonly ttl: number;

  constructor(registry: Registry, ttl: number) {
    this.ttl = ttl;
    const serial = registry.revision >>> 0;
    for (const net of registry.networks()) this.addNetwork(net, serial);
    for (const vm of registry.allVms()) {
      const domain = vm.network.domain;
      const zone = this.zones.get(domain);
      if (!zone) continue;
      // `metadata` wins over a VM that happens to share the name.
      if (vm.vm.name !== 'metadata') {
        for (const a of vm.addresses6) addRecord(zone, vm.fqdn, TYPE.AAAA, addressBytes(a));
        for (const a of vm.addresses4) addRecord(zone, vm.fqdn, TYPE.A, addressBytes(a));
      }
      for (const a of [...vm.addresses6, ...vm.addresses4]) this.addPtr(a, vm.fqdn);
    }
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
    const glue: Rr[] = [{ name: target, type: TYPE.AAAA, ttl: this.ttl, rdata: addressBytes(n.metadata6) }];
    if (n.metadata4) glue.push({ name: target, type: TYPE.A, ttl: this.ttl, rdata: addressBytes(n.metadata4) });
    for (const apex of [n.domain, ...view.reverseZones]) {
      const zone: Zone = {
        apex, nodes: new Map(), ents: new Set(), glue,
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
    const addr = parseAddress(address);
    if (!addr) return;
    const owner = reverseName(addr);
    const zone = this.zoneFor(owner);
    if (!zone || zone.apex === '' || !zone.apex.endsWith('arpa')) return;
    addRecord(zone, owner, TYPE.PTR, encodeName(target));
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
  let node = zone.nodes.get(owner);
  if (!node) {
    node = new Map();
    zone.nodes.set(owner, node);
    // Every name between the owner and the apex exists (RFC 8020): mark the empty ones.
    for (let name = owner; name !== zone.apex; ) {
      const dot = name.indexOf('.');
      if (dot < 0) break;
      name = name.slice(dot + 1);
      if (name === zone.apex) break;
      zone.ents.add(name);
    }
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
