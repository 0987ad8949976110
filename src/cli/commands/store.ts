// uncloud-metadata store migrate: bring the store to the key layout this version reads (store/keys.ts).
import { Command } from 'commander';
import { withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { printJson } from '../print.js';
import { migrateStore } from '../../store/migrate.js';
import { LAYOUT } from '../../store/keys.js';

export function storeCommand(): Command {
  const cmd = new Command('store').description('the store itself: its key layout');
  withStore(cmd.command('migrate').description(`bring the store to layout ${LAYOUT} (idempotent; run again to resume an interrupted run)`)
    .option('--json', 'print the report as JSON'))
    .action((o: StoreFlags & { json?: boolean }) => withWriter(o, async (_writer, store) => {
      const report = await migrateStore(store.kv, store.keys);
      if (o.json) return printJson({ ...report, to: LAYOUT });
      const what = report.written ? `${report.written} record(s) written` : 'nothing to do';
      process.stdout.write(`store ${store.kv.description}${store.keys.root}: layout ${report.from} -> ${LAYOUT}; ${report.networks} network(s), ${report.vms} VM(s), ${report.movedStates} agent report(s) moved; ${what}\n`);
      for (const key of report.skipped) process.stderr.write(`warning: left alone (does not parse): ${key}\n`);
    }));
  return cmd;
}
