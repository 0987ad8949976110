// Fills an etcd prefix with a synthetic cloud the way the operator CLI would leave it: networks,
// users with SSH keys, VMs owned by them, and the store-wide MAC and address claims the writer
// keeps. Written in 128-operation transactions (etcd's default cap), a few in flight.
// One extra VM, "probe" on net0, is bound to ::1 and 127.0.0.1 so that loopback HTTP clients
// are identified as a VM (as in the demo).
import { Etcd3 } from 'etcd3';
import { Keys, LAYOUT } from '../../dist/store/keys.js';
import { hostNetworkCopy, launchSpec } from '../../dist/store/derived.js';
import { eui64Address } from '../../dist/model/eui64.js';
import { parsePrefix } from '../../dist/model/ip.js';
import { NetworkSchema, UserSchema, VmSchema } from '../../dist/model/schema.js';

const TXN_OPS = 128;
const IN_FLIGHT = 8;

function sshKey(i) {
  const type = Buffer.from('ssh-ed25519');
  const blob = Buffer.alloc(4 + type.length + 4 + 32);
  blob.writeUInt32BE(type.length, 0);
  type.copy(blob, 4);
  blob.writeUInt32BE(32, 4 + type.length);
  blob.writeUInt32BE(i, 8 + type.length);
  return `ssh-ed25519 ${blob.toString('base64')} user${i}@bench`;
}

const hex2 = (n) => n.toString(16).padStart(2, '0');
export const vmMac = (i) => `52:54:00:${hex2((i >> 16) & 0xff)}:${hex2((i >> 8) & 0xff)}:${hex2(i & 0xff)}`;
export const networkName = (i) => `net${i}`;
export const domainOf = (net) => `${net}.bench.internal`;

export function network(i) {
  return {
    v: 1, name: networkName(i), prefix6: `fd00:${(i + 1).toString(16)}::/64`, domain: domainOf(networkName(i)),
    metadata6: `fd00:${(i + 1).toString(16)}::1`, upstreams: [],
  };
}

export function user(i) {
  return { v: 1, name: `user${i}`, keys: [{ name: 'laptop', key: sshKey(i) }] };
}

/**
 * With `hosts`, VM i (network n = i % networks, the j-th of it, j = floor(i / networks)) runs on
 * one of ten hosts its network spreads over, as a scheduler packing tenants would place it: with
 * 1,000 networks of 1,000 VMs on 1,000 hosts, each host runs 1,000 VMs of 10 networks (hv0: 100
 * each of net0, net100, ..., net900).
 */
function hostOf(i, networks, hosts) {
  const spread = Math.min(10, hosts);
  const n = i % networks;
  const j = Math.floor(i / networks);
  return ((n % Math.max(1, Math.floor(hosts / spread))) * spread + (j % spread)) % hosts;
}

export function vm(i, { networks, users, hosts = 0 }) {
  return {
    v: 1, id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`, name: `vm${i}`,
    network: networkName(i % networks), owner: users ? `user${i % users}` : undefined, mac: vmMac(i), addresses: [],
    ...(hosts ? { host: `hv${hostOf(i, networks, hosts)}` } : {}),
    resources: { memoryMiB: 512, cpus: 1 }, userData: `#cloud-config\nhostname: vm${i}\n`, meta: { role: 'bench', rack: `r${i % 40}` },
    sshKeys: [], requireToken: false, createdAt: '2024-01-01T00:00:00.000Z',
  };
}

/** The VM loopback clients are identified as; its owner is user0 when there are users. */
export function probeVm(users) {
  return {
    ...vm(0xfffffe, { networks: 1, users }), id: '00000000-0000-4000-8000-0000000fffff', name: 'probe',
    addresses: ['::1', '127.0.0.1'], meta: { role: 'probe', serial: '0' },
  };
}

/** Every key/value of a cloud of `vms` VMs, `users` users, `networks` networks. */
export function* records(keys, { vms, users, networks, hosts = 0 }) {
  yield [keys.layout, { v: LAYOUT }];
  const nets = Array.from({ length: networks }, (_, i) => network(i));
  for (const n of nets) yield [keys.network(n.name), n];
  for (let i = 0; i < users; i++) yield [keys.user(`user${i}`), user(i)];
  const prefixes = nets.map((n) => parsePrefix(n.prefix6, 6));
  const copies = new Set();
  const placed = new Set();
  const withClaims = function* (v, netIndex) {
    yield [keys.vm(v.network, v.name), v];
    if (v.owner) {
      // The owner's key copy in the VM's network and the reference that keeps it (store/keys.ts).
      yield [keys.owned(v.owner, v.network, v.name), ''];
      const copy = `${v.network}/${v.owner}`;
      if (!copies.has(copy)) {
        copies.add(copy);
        yield [keys.owner(v.network, v.owner), user(Number(v.owner.slice('user'.length)))];
      }
    }
    if (v.host) {
      yield [keys.launch(v.host, v.network, v.name), launchSpec(v)];
      // The host's copy of the network and its marker, with its first VM there.
      if (!placed.has(`${v.network}/${v.host}`)) {
        placed.add(`${v.network}/${v.host}`);
        yield [keys.hostNetwork(v.host, v.network), hostNetworkCopy(nets[netIndex], () => undefined)];
        yield [keys.placed(v.network, v.host), ''];
      }
    }
    const owner = `${v.network}/${v.name}`;
    yield [keys.mac(v.mac), owner];
    yield [keys.address(eui64Address(prefixes[netIndex], v.mac)), owner];
    for (const a of v.addresses) yield [keys.address(a), owner];
  };
  for (let i = 0; i < vms; i++) yield* withClaims(vm(i, { networks, users, hosts }), i % networks);
  yield* withClaims(probeVm(users), 0);
}

/** Checks one record of each kind against the real schemas, so the bench never measures skips. */
function checkShapes() {
  const ok = [NetworkSchema.safeParse(network(0)), UserSchema.safeParse(user(0)), VmSchema.safeParse(vm(1, { networks: 1, users: 1 })), VmSchema.safeParse(probeVm(1))];
  const bad = ok.find((r) => !r.success);
  if (bad) throw new Error(`bench records do not pass the schemas: ${JSON.stringify(bad.error.issues)}`);
}

export async function seed(endpoint, prefix, counts) {
  checkShapes();
  const keys = new Keys(prefix);
  const client = new Etcd3({ hosts: `http://${endpoint}`, grpcOptions: { 'grpc.max_receive_message_length': 64 << 20 } });
  try {
    const it = records(keys, counts);
    let done = false;
    let total = 0;
    const worker = async () => {
      while (!done) {
        const batch = [];
        for (let r = it.next(); ; r = it.next()) {
          if (r.done) { done = true; break; }
          const [key, value] = r.value;
          batch.push({ request_put: { key: Buffer.from(key), value: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)) } });
          if (batch.length === TXN_OPS) break;
        }
        if (batch.length) {
          await client.kv.txn({ compare: [], success: batch, failure: [] });
          total += batch.length;
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    return total;
  } finally {
    client.close();
  }
}

/** Removes everything under a prefix (between scale steps). */
export async function wipe(endpoint, prefix) {
  const client = new Etcd3({ hosts: `http://${endpoint}` });
  try {
    await client.delete().prefix(new Keys(prefix).root);
    // Compact so the next load does not pay for the deleted history.
    const rev = (await client.kv.range({ key: Buffer.from('x'), count_only: true })).header.revision;
    await client.kv.compact({ revision: rev, physical: true });
  } finally {
    client.close();
  }
}
