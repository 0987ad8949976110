// uncloud-metadata vm add|set|list|show|rm
import { closeSync, openSync, readSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { collect, positiveInt, withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { addGuestReportCommands } from './vm-guest.js';
import { printJson, printTable } from '../print.js';
import { fail } from '../errors.js';
import { diskFields, type DiskFormat } from '../disk-format.js';
import type { VmPatch } from '../../store/writer.js';
import type { Vm } from '../../model/schema.js';
import { eui64Address } from '../../model/eui64.js';
import { parsePrefix } from '../../model/ip.js';
import { MAX_DATA_BYTES, dataBytes, isBinaryData, type DataKind } from '../../model/user-data.js';

interface VmFlags extends StoreFlags {
  network?: string; owner?: string; mac?: string; address?: string[]; host?: string;
  memory?: number; cpus?: number; disk?: string; diskFormat?: DiskFormat; kernel?: string; initrd?: string; cmdline?: string;
  userData?: string; vendorData?: string; sshKey?: string[]; meta?: [string, string][];
  requireToken?: boolean; json?: boolean;
}

const metaPair = (value: string, previous: [string, string][] | undefined): [string, string][] => {
  const i = value.indexOf('=');
  if (i < 1) throw new InvalidArgumentError('meta must be KEY=VALUE');
  return [...(previous ?? []), [value.slice(0, i), value.slice(i + 1)]];
};

/**
 * A user-data or vendor-data file as bytes, exactly. Reads at most one byte past the limit, so a
 * huge file (or /dev/zero) is refused without being read whole.
 */
function readBytes(path: string, what: string): Buffer {
  const buf = Buffer.alloc(MAX_DATA_BYTES + 1);
  let n = 0;
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
  } catch (err) {
    return fail(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  if (n > MAX_DATA_BYTES) fail(`${what} file ${path} is larger than ${MAX_DATA_BYTES} bytes`);
  return buf.subarray(0, n);
}

/** What `vm show` says about user-data or vendor-data: never the bytes themselves. */
function describeData(vm: Vm, kind: DataKind): string | undefined {
  const bytes = dataBytes(vm, kind);
  if (!bytes) return undefined;
  return `${isBinaryData(vm, kind) ? 'binary' : 'text'}, ${bytes.length} bytes`;
}

function vmOptions(cmd: Command): Command {
  return withStore(cmd)
    .option('--owner <user>', 'owning user (their keys are authorised)')
    .option('--mac <mac>', 'MAC address (allocated when not given)')
    .option('--address <addr>', 'extra IPv6/IPv4 address inside the network (repeatable; on set: replaces the list)', collect)
    .option('--host <host>', 'hypervisor that runs it')
    .option('--memory <MiB>', 'memory in MiB', positiveInt('memory'))
    .option('--cpus <n>', 'virtual CPUs', positiveInt('cpus'))
    .option('--disk <path>', 'disk image on the VM\'s host, inside its agent.imageDirs')
    .addOption(new Option('--disk-format <format>', 'raw or qcow2 (default: read with qemu-img info when the disk is readable here)').choices(['raw', 'qcow2']))
    .option('--kernel <path>', 'kernel for direct boot (also with --disk: the disk is then the root device)')
    .option('--initrd <path>', 'initrd for direct boot')
    .option('--cmdline <str>', 'kernel command line')
    .option('--user-data <file>', 'user-data file')
    .option('--vendor-data <file>', 'vendor-data file')
    .option('--ssh-key <key>', 'VM-specific SSH key (repeatable; on set: replaces the list)', collect)
    .option('--meta <k=v>', 'metadata KEY=VALUE (repeatable; on set: KEY= removes KEY)', metaPair)
    .option('--require-token', 'every flavour: refuse requests without an IMDSv2 token or Metadata-Flavor: Google')
    .option('--no-require-token', 'serve requests without a token (the default)')
    .option('--json', 'print the record as JSON');
}

/** The fields the flags name. Reads the user-data and vendor-data files, once, before any store call. */
function patchFrom(o: VmFlags): VmPatch {
  const resources = { memoryMiB: o.memory, cpus: o.cpus, ...diskFields(o.disk, o.diskFormat), kernel: o.kernel, initrd: o.initrd, cmdline: o.cmdline };
  return {
    owner: o.owner, mac: o.mac, addresses: o.address, host: o.host,
    resources: Object.values(resources).some((v) => v !== undefined) ? resources : undefined,
    userData: o.userData === undefined ? undefined : readBytes(o.userData, 'user-data'),
    vendorData: o.vendorData === undefined ? undefined : readBytes(o.vendorData, 'vendor-data'),
    sshKeys: o.sshKey, meta: o.meta ? mergeMeta({}, o.meta, false) : undefined, requireToken: o.requireToken,
  };
}

/** `--meta` pairs over existing meta; on set, `KEY=` removes KEY. */
function mergeMeta(current: Record<string, string>, pairs: [string, string][], removeEmpty: boolean): Record<string, string> {
  const meta = { ...current };
  for (const [k, v] of pairs) {
    if (v === '' && removeEmpty) delete meta[k];
    else meta[k] = v;
  }
  return meta;
}

/**
 * Said after a write that leaves a VM requiring tokens: stock cloud-init's Ec2 datasource asks for
 * an IMDSv2 token only when DMI says AWS, so it gets 401s here and finds no datasource.
 */
const TOKEN_WARNING = "warning: --require-token: cloud-init's Ec2 datasource sends no IMDSv2 token off AWS and gets 401; "
  + 'such a VM must read its OpenStack or NoCloud metadata with an X-aws-ec2-metadata-token header (or GCE with Metadata-Flavor: Google)\n';

function warnIfToken(o: VmFlags): void {
  if (o.requireToken === true) process.stderr.write(TOKEN_WARNING);
}

function derived(vm: Vm, prefix6: string): string {
  return eui64Address(parsePrefix(prefix6, 6)!, vm.mac);
}

export function vmCommand(): Command {
  const cmd = new Command('vm').description('virtual machines: identity, addresses, keys, user data');

  vmOptions(cmd.command('add <name>').description('add a VM').requiredOption('--network <net>', 'its network'))
    .action((name: string, o: VmFlags) => {
      const patch = patchFrom(o); // reads files before touching the store
      return withWriter(o, async (writer) => {
        const vm = await writer.addVm({ ...patch, name, network: o.network!, mac: o.mac });
        warnIfToken(o);
        if (o.json) return printJson(vm);
        const { network } = await writer.getNetwork(vm.network);
        process.stdout.write(`vm ${vm.name} added: ${vm.id} mac ${vm.mac} address ${derived(vm, network.prefix6)}\n`);
      });
    });

  vmOptions(cmd.command('set <name>').description('change the fields given, keep the rest').option('--network <net>', 'its network, if the name is ambiguous'))
    .action((name: string, o: VmFlags) => {
      const patch = patchFrom(o); // reads files before touching the store
      return withWriter(o, async (writer) => {
        // Meta merges with what is stored at the moment of the write (inside the CAS loop).
        const vm = await writer.setVm(name, o.network, (current) => (o.meta ? { ...patch, meta: mergeMeta(current.meta, o.meta, true) } : patch));
        warnIfToken(o);
        if (o.json) printJson(vm);
        else process.stdout.write(`vm ${vm.name} updated\n`);
      });
    });

  withStore(cmd.command('list').description('list VMs, where they run and whether their host is alive')
    .option('--network <net>', 'only this network').option('--json', 'print JSON'))
    .action((o: VmFlags) => withWriter(o, async (writer) => {
      const [vms, states, hosts, networks] = await Promise.all([
        writer.listVms(o.network), writer.listVmStates(), writer.listHosts(), writer.listNetworks(),
      ]);
      const alive = new Set(hosts.map((h) => h.name));
      const prefix = new Map(networks.map((n) => [n.name, n.prefix6]));
      const rows = vms.map((vm) => {
        const s = states.get(`${vm.network}/${vm.name}`);
        return {
          vm, state: s?.state, hostAlive: vm.host ? alive.has(vm.host) : undefined,
          address: prefix.has(vm.network) ? derived(vm, prefix.get(vm.network)!) : undefined,
        };
      });
      if (o.json) return printJson(rows.map((r) => ({ ...r.vm, address: r.address, state: r.state ?? null, hostAlive: r.hostAlive ?? null })));
      printTable(['NAME', 'NETWORK', 'MAC', 'ADDRESS', 'OWNER', 'HOST', 'STATE'], rows.map((r) => [
        r.vm.name, r.vm.network, r.vm.mac, r.address, r.vm.owner,
        r.vm.host ? `${r.vm.host}${r.hostAlive ? '' : ' (down)'}` : undefined, r.state,
      ]));
    }));

  withStore(cmd.command('show <name>').description('show one VM').option('--network <net>', 'its network, if ambiguous').option('--json', 'print JSON'))
    .action((name: string, o: VmFlags) => withWriter(o, async (writer) => {
      const { vm } = await writer.findVm(name, o.network);
      const { network } = await writer.getNetwork(vm.network);
      const state = (await writer.listVmStates()).get(`${vm.network}/${vm.name}`);
      if (o.json) return printJson({ ...vm, derivedAddress: derived(vm, network.prefix6), state: state ?? null });
      printTable(['FIELD', 'VALUE'], [
        ['id', vm.id], ['name', vm.name], ['fqdn', `${vm.name}.${network.domain}`], ['network', vm.network],
        ['owner', vm.owner], ['mac', vm.mac], ['addresses', [derived(vm, network.prefix6), ...vm.addresses].join(' ')],
        ['host', vm.host], ['state', state ? `${state.state} since ${state.since}${state.lastError ? ` (${state.lastError})` : ''}` : undefined],
        ['memory', `${vm.resources.memoryMiB} MiB`], ['cpus', vm.resources.cpus],
        ['boot', [vm.resources.kernel, vm.resources.disk && `${vm.resources.disk}${vm.resources.diskFormat ? ` (${vm.resources.diskFormat})` : ''}`].filter(Boolean).join(' + ') || undefined],
        ['user-data', describeData(vm, 'userData')], ['vendor-data', describeData(vm, 'vendorData')],
        ['ssh-keys', vm.sshKeys.length], ['meta', Object.entries(vm.meta).map(([k, v]) => `${k}=${v}`).join(' ')],
        ['require-token', String(vm.requireToken)],
      ]);
    }));

  withStore(cmd.command('rm <name>').description('remove a VM (its agent stops it)').option('--network <net>', 'its network, if ambiguous'))
    .action((name: string, o: VmFlags) => withWriter(o, async (writer) => {
      const vm = await writer.removeVm(name, o.network);
      process.stdout.write(`vm ${vm.name} removed from ${vm.network}\n`);
    }));
  addGuestReportCommands(cmd);
  return cmd;
}
