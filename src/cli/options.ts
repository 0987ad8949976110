// Shared option helpers for commander: repeatable values and the store flags every command takes.
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';

export const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function positiveInt(what: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError(`${what} must be a positive whole number`);
    return Number(value);
  };
}

export function withStore(cmd: Command): Command {
  return cmd
    .option('--store <url>', 'etcd://HOST:PORT[,HOST:PORT] or file:PATH (env UNCLOUD_METADATA_STORE)')
    .option('--prefix <prefix>', 'key prefix in the store (env UNCLOUD_METADATA_PREFIX, default /uncloud)')
    .option('--config <file>', 'YAML config file (its store section is used)');
}
