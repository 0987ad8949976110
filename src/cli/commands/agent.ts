// uncloud-metadata agent: the host agent (qemu + taps + nftables) for one hypervisor.
import { Command, Option } from 'commander';
import { flagLayer, loadConfigOr } from '../../config/load.js';
import { createLogger } from '../../log.js';
import { openStore } from '../../store/open.js';
import { CliError } from '../errors.js';
import { parseHostPort } from '../../model/ip.js';
import { collect } from '../options.js';

interface AgentFlags {
  admin?: string; config?: string; store?: string; prefix?: string; host?: string; stateDir?: string; accel?: 'kvm' | 'tcg'; qemu?: string; logLevel?: string;
  imageDir?: string[]; user?: string;
}

const FLAG_PATHS: Record<string, string[]> = {
  store: ['store', 'url'], prefix: ['store', 'prefix'], logLevel: ['log', 'level'], host: ['agent', 'host'],
  stateDir: ['agent', 'stateDir'], accel: ['agent', 'accel'], qemu: ['agent', 'qemu'],
  imageDir: ['agent', 'imageDirs'], user: ['agent', 'user'],
};

export function agentCommand(): Command {
  return new Command('agent')
    .description('run the host agent: launch this host\'s VMs with qemu, wire taps to bridges, lock them with nftables')
    .option('--config <file>', 'YAML config file')
    .option('--store <url>', 'etcd://HOST:PORT[,HOST:PORT] or file:PATH')
    .option('--prefix <prefix>', 'key prefix in the store')
    .option('--host <name>', 'this hypervisor\'s name (as in vm add --host)')
    .option('--state-dir <dir>', 'per-VM console logs, QMP sockets, pidfiles')
    .addOption(new Option('--accel <accel>', 'accelerator (default: kvm when /dev/kvm works, else tcg)').choices(['kvm', 'tcg']))
    .option('--qemu <path>', 'qemu binary')
    .option('--image-dir <dir>', 'where disks, kernels and initrds may come from (repeatable; default /var/lib/uncloud-metadata/images)', collect)
    .option('--user <name>', 'the unprivileged user qemu runs as and that owns the taps (default uncloud-qemu)')
    .option('--admin <addr:port>', 'admin listener for /healthz /readyz /metrics (default [::1]:9154; "none" to disable)')
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .action(async (o: AgentFlags) => {
      const cfg = loadConfigOr({ file: o.config, flags: flagLayer({ ...o }, FLAG_PATHS) }, (m) => new CliError(m));
      if (!cfg.store.url) throw new CliError('agent needs a store: --store etcd://HOST:PORT (or UNCLOUD_METADATA_STORE)');
      if (!cfg.agent.host) throw new CliError('agent needs --host NAME (this hypervisor, as in vm add --host)');
      const log = createLogger(cfg.log.level);
      const { startAgent, LayoutRefused } = await import('../../agent/agent.js');
      const store = openStore(cfg.store.url, { prefix: cfg.store.prefix, tls: cfg.store.tls });
      const { createMetricsRegistry } = await import('../../metrics.js');
      const { startAdmin } = await import('../../daemon/admin.js');
      const metrics = createMetricsRegistry();
      const { NoSuchUser } = await import('../../agent/user.js');
      const agent = await startAgent({
        store, host: cfg.agent.host, stateDir: cfg.agent.stateDir, accel: cfg.agent.accel, qemu: cfg.agent.qemu,
        imageDirs: cfg.agent.imageDirs, user: cfg.agent.user, bridges: cfg.agent.bridges, log, metrics,
      }).catch(async (err) => {
        await store.kv.close();
        throw err instanceof NoSuchUser || err instanceof LayoutRefused ? new CliError(err.message) : err;
      });
      const adminAt = o.admin ?? '[::1]:9154';
      const hp = adminAt === 'none' ? undefined : parseHostPort(adminAt, 9154);
      if (adminAt !== 'none' && !hp) throw new CliError(`--admin: "${adminAt}" is not ADDR[:PORT]`);
      const admin = hp ? await startAdmin({ listen: [hp], metrics, readiness: () => ({ status: agent.ready() ? 'ready' : 'degraded' }) }) : undefined;
      const stop = (signal: string) => {
        log.info({ signal }, 'agent stopping; VMs keep running');
        agent.stop().then(() => admin?.close()).then(() => store.kv.close()).then(() => process.exit(0), () => process.exit(1));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
