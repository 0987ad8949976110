// The embedded demo: a file store seeded with one network and one VM bound to the loopback
// addresses, so that `dig @::1 -p 1053 metadata AAAA` and
// `curl http://[::1]:8775/openstack/latest/meta_data.json` answer on a fresh machine.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { FileKv } from '../store/file/kv.js';
import { Keys, LAYOUT } from '../store/keys.js';
import { migrateStore } from '../store/migrate.js';
import type { Network, User, Vm } from '../model/schema.js';

export const DEMO_DNS = ['[::1]:1053', '127.0.0.1:1053'];
export const DEMO_HTTP = ['[::1]:8775', '127.0.0.1:8775'];
export const DEMO_ADMIN = ['[::1]:9153'];

export function demoStatePath(): string {
  return process.env.UNCLOUD_METADATA_DEMO_STATE ?? join(tmpdir(), 'uncloud-metadata-demo.json');
}

const DEMO_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPEsMmGH49oFGhIFsPDHZG3kDqz8aO4BJ5JrIWJ6CRXY demo@uncloud';

/**
 * Seeds the demo records unless the network is already there (operator edits made with
 * `--store file:PATH` survive restarts). The loopback addresses are written directly: the
 * operator CLI rightly refuses a VM address equal to the metadata address.
 */
export async function seedDemo(path: string, prefix: string): Promise<void> {
  const kv = new FileKv(path);
  const keys = new Keys(prefix);
  // A demo state file left by an older version is brought to this layout (idempotent).
  if (await kv.get(keys.network('demo'))) {
    await migrateStore(kv, keys);
    return;
  }
  const network: Network = {
    v: 1, name: 'demo', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'demo.uncloud.internal',
    metadata6: '::1', metadata4: '127.0.0.1', upstreams: [],
  };
  const user: User = { v: 1, name: 'demo', keys: [{ name: 'demo-key', key: DEMO_KEY }] };
  const vm: Vm = {
    v: 1, id: randomUUID(), name: 'demo-vm', network: 'demo', owner: 'demo', mac: '02:00:00:00:00:01',
    addresses: ['::1', '127.0.0.1'], resources: { memoryMiB: 512, cpus: 1 },
    userData: '#cloud-config\nhostname: demo-vm\nusers:\n  - default\n', meta: { role: 'demo' },
    sshKeys: [], requireToken: false, createdAt: new Date().toISOString(),
  };
  await kv.txn({
    compares: [{ key: keys.network('demo'), modRevision: 0 }],
    puts: [
      { key: keys.layout, value: JSON.stringify({ v: LAYOUT }) },
      { key: keys.network('demo'), value: JSON.stringify(network) },
      { key: keys.user('demo'), value: JSON.stringify(user) },
      { key: keys.owner('demo', 'demo'), value: JSON.stringify(user) },
      { key: keys.owned('demo', 'demo', 'demo-vm'), value: '' },
      { key: keys.vm('demo', 'demo-vm'), value: JSON.stringify(vm) },
      { key: keys.mac(vm.mac), value: 'demo/demo-vm' },
    ],
    deletes: [],
  });
}
