// uncloud-metadata status: one screen for an operator.
import { Command } from 'commander';
import { withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { printJson, printTable } from '../print.js';

export function statusCommand(): Command {
  return withStore(new Command('status').description('store, networks, hosts and where each VM runs').option('--json', 'print JSON'))
    .action((o: StoreFlags & { json?: boolean }) => withWriter(o, async (writer, store) => {
      const started = Date.now();
      const { revision } = await store.kv.range(store.keys.network(''));
      const latencyMs = Date.now() - started;
      const [networks, vms, states, hosts] = await Promise.all([writer.listNetworks(), writer.listVms(), writer.listVmStates(), writer.listHosts()]);
      const alive = new Set(hosts.map((h) => h.name));
      const perHost = new Map<string, { vms: number; running: number; failed: number; alive: boolean }>();
      for (const vm of vms) {
        const host = vm.host ?? '(unscheduled)';
        const row = perHost.get(host) ?? { vms: 0, running: 0, failed: 0, alive: alive.has(host) };
        row.vms++;
        const s = states.get(`${vm.network}/${vm.name}`)?.state;
        if (s === 'running') row.running++;
        if (s === 'failed') row.failed++;
        perHost.set(host, row);
      }
      for (const h of hosts) if (!perHost.has(h.name)) perHost.set(h.name, { vms: 0, running: 0, failed: 0, alive: true });
      const status = {
        store: { url: store.kv.description, reachable: true, revision, latencyMs },
        networks: networks.map((n) => ({ name: n.name, prefix6: n.prefix6, domain: n.domain, metadata6: n.metadata6, vms: vms.filter((v) => v.network === n.name).length })),
        hosts: [...perHost].map(([name, r]) => ({ name, ...r })),
      };
      if (o.json) return printJson(status);
      process.stdout.write(`store     ${status.store.url}  revision ${revision}  (${latencyMs} ms)\n\n`);
      printTable(['NETWORK', 'PREFIX6', 'DOMAIN', 'METADATA6', 'VMS'], status.networks.map((n) => [n.name, n.prefix6, n.domain, n.metadata6, n.vms]));
      process.stdout.write('\n');
      printTable(['HOST', 'ALIVE', 'VMS', 'RUNNING', 'FAILED'], status.hosts.map((h) => [h.name, h.name === '(unscheduled)' ? '' : h.alive ? 'yes' : 'NO', h.vms, h.running, h.failed]));
    }));
}
