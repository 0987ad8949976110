// uncloud-metadata network add|list|show|rm
import { Command } from 'commander';
import { collect, withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { printJson, printTable } from '../print.js';
import type { Network } from '../../model/schema.js';
import { placementOf } from '../../model/placement.js';
import { invalid } from '../../store/errors.js';

type Flags = StoreFlags & { json?: boolean };

function show(n: Network): void {
  const p = placementOf(n);
  printTable(['FIELD', 'VALUE'], [
    ['name', n.name], ['prefix6', n.prefix6], ['prefix4', n.prefix4], ['domain', n.domain],
    ['metadata6', n.metadata6], ['metadata4', n.metadata4], ['replicas6', n.replicas6?.join(' ')], ['replicas4', n.replicas4?.join(' ')], ['upstreams', n.upstreams.join(' ')],
    ['bridge', n.bridge ?? `br-${n.name}`], ['forward-to', (n.forwardTo ?? []).join(' ') || '(nowhere)'],
    ['region', n.region !== undefined || n.zone !== undefined ? p.region : `${p.region} (default)`],
    ['zone', n.zone !== undefined ? p.zone : `${p.zone} (default)`],
    ['dns', `${n.dnsPublic ? 'public' : 'own prefixes and ACL only'}${n.dnsGoogleInternal === false ? '' : ', metadata.google.internal'}`],
  ]);
}

export function networkCommand(): Command {
  const cmd = new Command('network').description('networks: prefix, search domain, metadata address, upstream resolvers');

  withStore(cmd.command('add <name>').description('add a network')
    .requiredOption('--prefix6 <cidr>', 'IPv6 prefix, exactly /64')
    .option('--prefix4 <cidr>', 'optional IPv4 prefix')
    .requiredOption('--domain <domain>', 'search domain the VMs use')
    .requiredOption('--metadata6 <addr>', "the appliance's IPv6 address inside prefix6")
    .option('--metadata4 <addr>', "the appliance's IPv4 address inside prefix4")
    .option('--replica6 <addr>', 'a further appliance replica\'s IPv6 address (repeatable): `metadata` answers every one', collect)
    .option('--replica4 <addr>', 'a further appliance replica\'s IPv4 address (repeatable)', collect)
    .option('--upstream <addr:port>', 'upstream resolver (repeatable)', collect)
    .option('--bridge <name>', 'host bridge the agent uses (default br-NAME)')
    .option('--region <region>', 'region served to its VMs (default: the zone minus its last letter, else the network name)')
    .option('--zone <zone>', 'availability zone: the region plus one letter (default: the region plus "a")')
    .option('--dns-public', 'answer its names and PTRs to any DNS client (default: only its own prefixes and the ACL)')
    .option('--no-google-internal', 'do not answer metadata.google.internal for its VMs')
    .option('--forward-to <network>', 'let hosts route this network\'s guests to another network, or "*" for anywhere (repeatable; default: nowhere)', collect)
    .option('--json', 'print the record as JSON'))
    .action((name: string, o: Flags & { prefix6: string; prefix4?: string; domain: string; metadata6: string; metadata4?: string; replica6?: string[]; replica4?: string[]; upstream?: string[]; bridge?: string; region?: string; zone?: string; dnsPublic?: boolean; googleInternal: boolean; forwardTo?: string[] }) =>
      withWriter(o, async (writer) => {
        const n = await writer.addNetwork({
          name, prefix6: o.prefix6, prefix4: o.prefix4, domain: o.domain, metadata6: o.metadata6,
          metadata4: o.metadata4, replicas6: o.replica6, replicas4: o.replica4, upstreams: o.upstream ?? [], bridge: o.bridge, region: o.region, zone: o.zone,
          dnsPublic: o.dnsPublic || undefined, dnsGoogleInternal: o.googleInternal ? undefined : false, forwardTo: o.forwardTo,
        });
        if (o.json) printJson(n);
        else process.stdout.write(`network ${n.name} added: ${n.prefix6} ${n.domain}, metadata at ${n.metadata6}\n`);
      }));

  withStore(cmd.command('list').description('list networks').option('--json', 'print JSON'))
    .action((o: Flags) => withWriter(o, async (writer) => {
      const all = await writer.listNetworks();
      if (o.json) printJson(all);
      else printTable(['NAME', 'PREFIX6', 'PREFIX4', 'DOMAIN', 'METADATA6'], all.map((n) => [n.name, n.prefix6, n.prefix4, n.domain, n.metadata6]));
    }));

  withStore(cmd.command('show <name>').description('show one network').option('--json', 'print JSON'))
    .action((name: string, o: Flags) => withWriter(o, async (writer) => {
      const { network } = await writer.getNetwork(name);
      if (o.json) printJson(network);
      else show(network);
    }));

  withStore(cmd.command('set <name>').description("change a network's placement (what is not given takes its default), or where its guests are routed")
    .option('--region <region>', 'region served to its VMs (default: the zone minus its last letter, else the network name)')
    .option('--zone <zone>', 'availability zone: the region plus one letter (default: the region plus "a")')
    .option('--forward-to <network>', 'let hosts route its guests to this network, or "*" for anywhere (repeatable; replaces the list)', collect)
    .option('--no-forward', 'route its guests nowhere beyond their network')
    .option('--json', 'print the record as JSON'))
    .action((name: string, o: Flags & { region?: string; zone?: string; forwardTo?: string[]; forward: boolean }) => withWriter(o, async (writer) => {
      if (o.forwardTo !== undefined || !o.forward) {
        if (o.region !== undefined || o.zone !== undefined) throw invalid('give --forward-to/--no-forward or --region/--zone, not both');
        if (o.forwardTo !== undefined && !o.forward) throw invalid('give --forward-to or --no-forward, not both');
        const n = await writer.setNetworkForwarding(name, o.forwardTo ?? []);
        if (o.json) return printJson(n);
        process.stdout.write(`network ${n.name} updated: forward to ${(n.forwardTo ?? []).join(' ') || '(nowhere)'}\n`);
        return;
      }
      const n = await writer.setNetworkPlacement(name, { region: o.region, zone: o.zone });
      if (o.json) return printJson(n);
      const p = placementOf(n);
      process.stdout.write(`network ${n.name} updated: region ${p.region}, zone ${p.zone}\n`);
    }));

  withStore(cmd.command('rm <name>').description('remove a network that has no VMs'))
    .action((name: string, o: Flags) => withWriter(o, async (writer) => {
      await writer.removeNetwork(name);
      process.stdout.write(`network ${name} removed\n`);
    }));
  return cmd;
}
