// uncloud-metadata ra-config NETWORK [--format radvd|dnsmasq]
import { Command, Option } from 'commander';
import { withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { renderRa, type RaFormat } from '../../ra/render.js';

export function raConfigCommand(): Command {
  return withStore(new Command('ra-config').argument('<network>')
    .description('print the router advertisement config that announces the prefix, RDNSS and DNSSL')
    .addOption(new Option('--format <format>', 'config format').choices(['radvd', 'dnsmasq']).default('radvd'))
    .option('--interface <name>', 'interface to announce on (default: the network\'s bridge)'))
    .action((name: string, o: StoreFlags & { format: RaFormat; interface?: string }) => withWriter(o, async (writer) => {
      const { network } = await writer.getNetwork(name);
      process.stdout.write(renderRa(network, o.format, o.interface));
    }));
}
