// Where each record lives under the key prefix (default /uncloud). Layout 3: everything a reader
// needs sits under prefixes that name who may read it, so etcd roles can grant exactly that.
//
//   layout                           {"v":3}: the layout this store is in (store migrate writes it)
//   networks/<network>               Network                     appliance of <network>: read (one key)
//   vms/<network>/<name>             Vm                          appliance of <network>: read (prefix vms/<network>/)
//   vms/<network>/.owners/<user>     User, copied from users/<user> while <user> owns a VM in <network>
//   vms/<network>/.attributes/<name> GuestAttributes the VM reported   appliance of <network>: read-write (prefix vms/<network>/.attributes/)
//   users/<user>                     User                        operators only
//   owned/<user>/<network>/<name>    "": <user> owns that VM (what keeps the copies above in step)
//   macs/<mac>                       "<network>/<name>": claims a MAC store-wide
//   addresses/<addr>                 "<network>/<name>": claims an explicit address store-wide
//   hosts/<host>                     Host heartbeat, bound to the agent's lease        agent of <host>: read-write
//   hosts/<host>/state/<network>/<name>  VmState, written by the agent                agent of <host>: read-write
//   hosts/<host>/vms/<network>/<name>    LaunchSpec: what the agent needs to run it   agent of <host>: read
//   hosts/<host>/networks/<network>      HostNetwork: the network as its agent needs it (bridge,
//                                        metadata addresses, forwarding resolved to prefixes), while
//                                        <host> runs a VM of <network>              agent of <host>: read
//   placed/<network>/<host>          "": <host> holds a copy of <network> (how a network change finds them)
//   network-epoch                    a counter every network add, remove and change bumps: they
//                                    serialize, so a forwarding change and the add or removal of
//                                    its target never pass each other            operators only
//
// ".owners" is no DNS label, so it never collides with a VM name. Layout 1 (before `store migrate`)
// had no owner copies, no owned/ refs, no launch specs, and kept VmState at vm-state/<network>/<name>;
// layout 2 had no host network copies (agents read every network record).

export const DEFAULT_PREFIX = '/uncloud';
export const LAYOUT = 3;
export const OWNERS_DIR = '.owners';
export const ATTRIBUTES_DIR = '.attributes';

export type RecordKind =
  | 'layout' | 'network' | 'user' | 'vm' | 'owner' | 'owned' | 'mac' | 'address' | 'vm-state' | 'host' | 'launch'
  | 'legacy-vm-state' | 'guest-attributes' | 'host-network' | 'placed';

export interface ParsedKey {
  kind: RecordKind;
  /**
   * networks, users, hosts: [name]; vms: [network, name]; owner copies: [network, user];
   * owned: [user, network, name]; guest-attributes: [network, name]; vm-state and launch: [host, network, name]; macs, addresses: [value];
   * host-network: [host, network]; placed: [network, host];
   * legacy-vm-state (layout 1): [network, name]
   */
  parts: string[];
}

/** One key (exact) or every key under a prefix: what an etcd role permission can name. */
export interface KeyRange {
  key: string;
  prefix: boolean;
}

export const inRange = (r: KeyRange, key: string): boolean => (r.prefix ? key.startsWith(r.key) : key === r.key);
export const describeRange = (r: KeyRange): string => (r.prefix ? `${r.key}*` : r.key);

export class Keys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    this.prefix = prefix.replace(/\/+$/, '');
  }
  get root(): string { return `${this.prefix}/`; }
  get layout(): string { return `${this.prefix}/layout`; }
  network(name: string): string { return `${this.prefix}/networks/${name}`; }
  user(name: string): string { return `${this.prefix}/users/${name}`; }
  vm(network: string, name: string): string { return `${this.prefix}/vms/${network}/${name}`; }
  /** Every VM of a network, and its owner copies. */
  vmsOf(network: string): string { return `${this.prefix}/vms/${network}/`; }
  get vms(): string { return `${this.prefix}/vms/`; }
  owner(network: string, user: string): string { return `${this.prefix}/vms/${network}/${OWNERS_DIR}/${user}`; }
  guestAttributes(network: string, name: string): string { return `${this.prefix}/vms/${network}/${ATTRIBUTES_DIR}/${name}`; }
  /** What an appliance of `network` writes: its VMs' guest attributes, and nothing else. */
  guestAttributesOf(network: string): string { return `${this.prefix}/vms/${network}/${ATTRIBUTES_DIR}/`; }
  owned(user: string, network: string, name: string): string { return `${this.prefix}/owned/${user}/${network}/${name}`; }
  get ownership(): string { return `${this.prefix}/owned/`; }
  ownedBy(user: string, network?: string): string { return `${this.prefix}/owned/${user}/${network ? `${network}/` : ''}`; }
  mac(mac: string): string { return `${this.prefix}/macs/${mac}`; }
  address(addr: string): string { return `${this.prefix}/addresses/${addr}`; }
  host(name: string): string { return `${this.prefix}/hosts/${name}`; }
  get hosts(): string { return `${this.prefix}/hosts/`; }
  vmState(host: string, network: string, name: string): string { return `${this.prefix}/hosts/${host}/state/${network}/${name}`; }
  statesOf(host: string): string { return `${this.prefix}/hosts/${host}/state/`; }
  launch(host: string, network: string, name: string): string { return `${this.prefix}/hosts/${host}/vms/${network}/${name}`; }
  launchesOf(host: string, network?: string): string { return `${this.prefix}/hosts/${host}/vms/${network ? `${network}/` : ''}`; }
  hostNetwork(host: string, network: string): string { return `${this.prefix}/hosts/${host}/networks/${network}`; }
  hostNetworksOf(host: string): string { return `${this.prefix}/hosts/${host}/networks/`; }
  placed(network: string, host: string): string { return `${this.prefix}/placed/${network}/${host}`; }
  placedOf(network: string): string { return `${this.prefix}/placed/${network}/`; }
  get placements(): string { return `${this.prefix}/placed/`; }
  get networkEpoch(): string { return `${this.prefix}/network-epoch`; }
  /** Layout 1's VmState key (read by `store migrate` only). */
  legacyVmState(network: string, name: string): string { return `${this.prefix}/vm-state/${network}/${name}`; }
  get legacyVmStates(): string { return `${this.prefix}/vm-state/`; }

  /**
   * What an appliance reads and follows: the layout marker, and per served network its record and
   * its VMs with their owners' keys; with no names, every network.
   */
  applianceRanges(networks?: string[]): KeyRange[] {
    const layout = { key: this.layout, prefix: false };
    if (!networks?.length) return [layout, { key: this.network(''), prefix: true }, { key: this.vms, prefix: true }];
    return [layout, ...[...new Set(networks)].sort().flatMap((n) => [
      { key: this.network(n), prefix: false }, { key: this.vmsOf(n), prefix: true },
    ])];
  }

  /**
   * What the agent of `host` reads and follows, all under its own hosts/<host>/: the networks its
   * VMs use (bridges, metadata addresses, forwarding), its launch specs (never user-data, never
   * another host's VMs) and its own reports. A change to any other network or host costs it nothing.
   */
  agentRanges(host: string): KeyRange[] {
    return [
      { key: this.layout, prefix: false }, { key: this.hostNetworksOf(host), prefix: true },
      { key: this.launchesOf(host), prefix: true }, { key: this.statesOf(host), prefix: true },
    ];
  }

  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.root)) return undefined;
    const [dir, ...parts] = key.slice(this.root.length).split('/');
    if (parts.some((p) => p.length === 0)) return undefined;
    const n = parts.length;
    switch (dir) {
      case 'layout': return n === 0 ? { kind: 'layout', parts } : undefined;
      case 'networks': return n === 1 ? { kind: 'network', parts } : undefined;
      case 'users': return n === 1 ? { kind: 'user', parts } : undefined;
      case 'macs': return n === 1 ? { kind: 'mac', parts } : undefined;
      case 'addresses': return n === 1 ? { kind: 'address', parts } : undefined;
      case 'vms':
        if (n === 2 && parts[1] !== OWNERS_DIR && parts[1] !== ATTRIBUTES_DIR) return { kind: 'vm', parts };
        if (n === 3 && parts[1] === ATTRIBUTES_DIR) return { kind: 'guest-attributes', parts: [parts[0], parts[2]] };
        if (n === 3 && parts[1] === OWNERS_DIR) return { kind: 'owner', parts: [parts[0], parts[2]] };
        return undefined;
      case 'owned': return n === 3 ? { kind: 'owned', parts } : undefined;
      case 'placed': return n === 2 ? { kind: 'placed', parts } : undefined;
      case 'vm-state': return n === 2 ? { kind: 'legacy-vm-state', parts } : undefined;
      case 'hosts':
        if (n === 1) return { kind: 'host', parts };
        if (n === 4 && parts[1] === 'state') return { kind: 'vm-state', parts: [parts[0], parts[2], parts[3]] };
        if (n === 4 && parts[1] === 'vms') return { kind: 'launch', parts: [parts[0], parts[2], parts[3]] };
        if (n === 3 && parts[1] === 'networks') return { kind: 'host-network', parts: [parts[0], parts[2]] };
        return undefined;
      default:
        return undefined;
    }
  }
}
