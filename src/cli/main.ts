#!/usr/bin/env node
// uncloud-metadata: the operator CLI and the daemons (serve, agent) in one binary.
import { Command, CommanderError } from 'commander';
import { networkCommand } from './commands/network.js';
import { userCommand } from './commands/user.js';
import { vmCommand } from './commands/vm.js';
import { extraCommands } from './commands/index.js';
import { CliError } from './errors.js';
import { StoreError } from '../store/errors.js';
import { StoreUnavailableError } from '../store/kv.js';

function oneLine(message: string): string {
  return message.split('\n').map((l) => l.trim()).filter(Boolean)[0] ?? 'failed';
}

export function buildProgram(): Command {
  const program = new Command('uncloud-metadata')
    .description('DNS and metadata for IPv6-first VM networks, from etcd')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`${oneLine(str.replace(/^error: /, 'error: '))}\n`) });
  for (const cmd of [networkCommand(), userCommand(), vmCommand(), ...extraCommands()]) program.addCommand(cmd);
  // Every subcommand fails the same way: one line, non-zero exit.
  const walk = (c: Command): void => {
    c.exitOverride().configureOutput({ outputError: (str, write) => write(`${oneLine(str)}\n`) });
    c.commands.forEach(walk);
  };
  program.commands.forEach(walk);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version exit 0; parse errors were printed by commander already
      return err.exitCode;
    }
    if (err instanceof CliError || err instanceof StoreError || err instanceof StoreUnavailableError) {
      process.stderr.write(`error: ${oneLine(err.message)}\n`);
      return err instanceof CliError ? err.exitCode : err instanceof StoreUnavailableError ? 3 : 1;
    }
    process.stderr.write(`error: internal: ${oneLine(err instanceof Error ? err.message : String(err))}\n`);
    return 70;
  }
}

// Daemons (serve, agent) keep the process alive with their sockets; everything else ends here.
process.exitCode = await main(process.argv.slice(2));
