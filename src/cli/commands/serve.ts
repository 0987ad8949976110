// uncloud-metadata serve: the appliance daemon.
import { Command } from 'commander';
import { collect, positiveInt } from '../options.js';
import { flagLayer, loadConfigOr } from '../../config/load.js';
import { createLogger } from '../../log.js';
import { CliError } from '../errors.js';

interface ServeFlags {
  config?: string; store?: string; prefix?: string; network?: string[]; dns?: string[]; http?: string[];
  admin?: string[]; upstream?: string[]; ttl?: number; logLevel?: string; tokenSecretFile?: string; workers?: number;
}

const FLAG_PATHS: Record<string, string[]> = {
  store: ['store', 'url'], prefix: ['store', 'prefix'], logLevel: ['log', 'level'],
  network: ['serve', 'networks'], dns: ['serve', 'dns'], http: ['serve', 'http'], admin: ['serve', 'admin'],
  upstream: ['serve', 'upstreams'], ttl: ['serve', 'ttl'], tokenSecretFile: ['serve', 'tokenSecretFile'], workers: ['serve', 'workers'],
};

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the appliance: DNS and HTTP metadata for the served networks (no store: the embedded demo)')
    .option('--config <file>', 'YAML config file')
    .option('--store <url>', 'etcd://HOST:PORT[,HOST:PORT] or file:PATH; none: embedded demo')
    .option('--prefix <prefix>', 'key prefix in the store')
    .option('--network <name>', 'serve this network (repeatable; default: all)', collect)
    .option('--dns <addr:port>', 'DNS listen address (repeatable; default: each network\'s metadata address, port 53)', collect)
    .option('--http <addr:port>', 'HTTP listen address (repeatable; default: each network\'s metadata address, port 80)', collect)
    .option('--admin <addr:port>', 'admin listener for /healthz /readyz /metrics (repeatable; default [::1]:9153)', collect)
    .option('--upstream <addr:port>', 'upstream resolver for names outside the served zones (repeatable)', collect)
    .option('--ttl <seconds>', 'TTL of authoritative answers', positiveInt('ttl'))
    .option('--token-secret-file <path>', 'IMDSv2 token key shared by replicas')
    .option('--workers <n>', 'worker processes', positiveInt('workers'))
    .option('--log-level <level>', 'trace|debug|info|warn|error')
    .action(async (o: ServeFlags) => {
      const cfg = loadConfigOr({ file: o.config, flags: flagLayer({ ...o }, FLAG_PATHS) }, (m) => new CliError(m));
      const log = createLogger(cfg.log.level);
      if (cfg.serve.workers > 1) {
        const { isWorker, superviseWorkers } = await import('../../daemon/workers.js');
        if (!isWorker) {
          if (!cfg.store.url) throw new CliError('--workers needs --store: the embedded demo runs in one process');
          const supervisor = superviseWorkers(cfg, log);
          const stopAll = (signal: string) => {
            log.info({ signal }, 'stopping workers');
            supervisor.close().then(() => process.exit(0), () => process.exit(1));
          };
          process.once('SIGTERM', () => stopAll('SIGTERM'));
          process.once('SIGINT', () => stopAll('SIGINT'));
          return;
        }
      }
      // The daemon (DNS, HTTP, etcd) loads only for this command, keeping the CLI quick.
      const { serve, ServeError } = await import('../../daemon/serve.js');
      let daemon;
      try {
        daemon = await serve(cfg, log);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (err instanceof ServeError) throw new CliError(err.message);
        if (e.code === 'EADDRINUSE' || e.code === 'EADDRNOTAVAIL' || e.code === 'EACCES') throw new CliError(`cannot listen: ${e.message}`);
        throw err;
      }
      const stop = (signal: string) => {
        log.info({ signal }, 'shutting down');
        daemon.close().then(() => process.exit(0), () => process.exit(1));
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
}
