// Where each record lives under the key prefix (default /uncloud).
//   networks/<name>            Network
//   users/<name>               User
//   vms/<network>/<name>       Vm
//   macs/<mac>                 "<network>/<name>": claims a MAC store-wide
//   addresses/<addr>           "<network>/<name>": claims an explicit address store-wide
//   vm-state/<network>/<name>  VmState, written by the agent
//   hosts/<host>               Host heartbeat, bound to the agent's lease

export const DEFAULT_PREFIX = '/uncloud';

export type RecordKind = 'network' | 'user' | 'vm' | 'mac' | 'address' | 'vm-state' | 'host';

export interface ParsedKey {
  kind: RecordKind;
  /** networks, users, hosts: [name]; vms, vm-state: [network, name]; macs, addresses: [value] */
  parts: string[];
}

export class Keys {
  constructor(readonly prefix: string = DEFAULT_PREFIX) {
    this.prefix = prefix.replace(/\/+$/, '');
  }
  get root(): string { return `${this.prefix}/`; }
  network(name: string): string { return `${this.prefix}/networks/${name}`; }
  user(name: string): string { return `${this.prefix}/users/${name}`; }
  vm(network: string, name: string): string { return `${this.prefix}/vms/${network}/${name}`; }
  vmsOf(network: string): string { return `${this.prefix}/vms/${network}/`; }
  get vms(): string { return `${this.prefix}/vms/`; }
  mac(mac: string): string { return `${this.prefix}/macs/${mac}`; }
  address(addr: string): string { return `${this.prefix}/addresses/${addr}`; }
  vmState(network: string, name: string): string { return `${this.prefix}/vm-state/${network}/${name}`; }
  get vmStates(): string { return `${this.prefix}/vm-state/`; }
  host(name: string): string { return `${this.prefix}/hosts/${name}`; }
  get hosts(): string { return `${this.prefix}/hosts/`; }

  parse(key: string): ParsedKey | undefined {
    if (!key.startsWith(this.root)) return undefined;
    const [dir, ...parts] = key.slice(this.root.length).split('/');
    const kind: RecordKind | undefined = ({ networks: 'network', users: 'user', vms: 'vm', macs: 'mac', addresses: 'address', 'vm-state': 'vm-state', hosts: 'host' } as Record<string, RecordKind>)[dir];
    if (!kind) return undefined;
    const want = kind === 'vm' || kind === 'vm-state' ? 2 : 1;
    if (parts.length !== want || parts.some((p) => p.length === 0)) return undefined;
    return { kind, parts };
  }
}
