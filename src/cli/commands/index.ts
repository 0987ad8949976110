// Commands beyond the record editors: the daemons and operator tools.
import type { Command } from 'commander';

export function extraCommands(): Command[] {
  return [];
}
