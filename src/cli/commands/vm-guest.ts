// What guests reported back, for the operator: `vm attributes NAME` (GCE guest attributes) and
// `vm known-hosts NAME` (known_hosts lines from the host keys the guest published).
import type { Command } from 'commander';
import { withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { printJson, printTable } from '../print.js';
import { CliError } from '../errors.js';
import { readGuestAttributes } from '../../store/guest-attributes.js';
import { HOSTKEYS_NAMESPACE, hostKeys, knownHostsLines } from '../../model/hostkeys.js';
import { parsePrefix } from '../../model/ip.js';
import { eui64Address } from '../../model/eui64.js';

type Flags = StoreFlags & { network?: string; json?: boolean };

export function addGuestReportCommands(cmd: Command): void {
  withStore(cmd.command('attributes <name>').description('show the guest attributes a VM reported (GCE style)')
    .option('--network <net>', 'its network, if ambiguous').option('--json', 'print JSON'))
    .action((name: string, o: Flags) => withWriter(o, async (writer, store) => {
      const { vm } = await writer.findVm(name, o.network);
      const attrs = await readGuestAttributes(store.kv, store.keys, vm);
      if (o.json) return printJson(attrs);
      printTable(['NAMESPACE', 'KEY', 'VALUE'], Object.entries(attrs).sort(([a], [b]) => a.localeCompare(b))
        .flatMap(([ns, keys]) => Object.entries(keys).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [ns, k, v.length > 80 ? `${v.slice(0, 77)}...` : v])));
    }));

  withStore(cmd.command('known-hosts <name>').description('print known_hosts lines for the host keys the VM published')
    .option('--network <net>', 'its network, if ambiguous'))
    .action((name: string, o: Flags) => withWriter(o, async (writer, store) => {
      const { vm } = await writer.findVm(name, o.network);
      const { network } = await writer.getNetwork(vm.network);
      const keys = hostKeys((await readGuestAttributes(store.kv, store.keys, vm))[HOSTKEYS_NAMESPACE]);
      if (!keys.length) throw new CliError(`VM "${vm.name}" has published no SSH host keys (guest attributes ${HOSTKEYS_NAMESPACE}/)`);
      const p6 = parsePrefix(network.prefix6, 6);
      const names = [vm.name, `${vm.name}.${network.domain}`, ...(p6 ? [eui64Address(p6, vm.mac)] : []), ...vm.addresses];
      process.stdout.write(`${knownHostsLines(names, keys).join('\n')}\n`);
    }));
}
