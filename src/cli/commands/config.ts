// uncloud-metadata config check FILE
import { Command } from 'commander';
import { loadConfigOr } from '../../config/load.js';
import { CliError } from '../errors.js';
import { printJson } from '../print.js';

export function configCommand(): Command {
  const cmd = new Command('config').description('configuration files');
  cmd.command('check <file>').description('validate a config file (with the environment applied) and print the result')
    .option('--json', 'print the effective config as JSON')
    .action((file: string, o: { json?: boolean }) => {
      const cfg = loadConfigOr({ file }, (m) => new CliError(m));
      if (o.json) printJson(cfg);
      else process.stdout.write(`${file}: ok\n`);
    });
  return cmd;
}
