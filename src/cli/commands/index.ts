// Commands beyond the record editors: the daemons and operator tools.
import type { Command } from 'commander';
import { statusCommand } from './status.js';
import { configCommand } from './config.js';
import { raConfigCommand } from './ra-config.js';
import { agentCommand } from './agent.js';
import { serveCommand } from './serve.js';
import { identityCommand } from './identity.js';
import { storeCommand } from './store.js';

export function extraCommands(): Command[] {
  return [serveCommand(), agentCommand(), statusCommand(), configCommand(), raConfigCommand(), identityCommand(), storeCommand()];
}
