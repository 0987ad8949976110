// uncloud-metadata user key add|rm, user list|show|rm
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { withStore } from '../options.js';
import { withWriter, type StoreFlags } from '../store.js';
import { printJson, printTable } from '../print.js';
import { fail } from '../errors.js';

type Flags = StoreFlags & { json?: boolean };

function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    return fail(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function userCommand(): Command {
  const cmd = new Command('user').description('users and their named SSH public keys');
  const key = cmd.command('key').description("manage a user's SSH keys");

  withStore(key.command('add <user> <keyname> [key]').description('add a named key (creates the user)')
    .option('--file <path>', 'read the key from a .pub file'))
    .action((user: string, keyName: string, keyText: string | undefined, o: Flags & { file?: string }) => {
      if (keyText && o.file) fail('give the key or --file, not both');
      const text = o.file ? readKeyFile(o.file) : keyText;
      if (!text) fail('give the key as an argument or with --file PATH');
      return withWriter(o, async (writer) => {
        await writer.addUserKey(user, keyName, text);
        process.stdout.write(`key ${keyName} added to user ${user}\n`);
      });
    });

  withStore(key.command('rm <user> <keyname>').description('remove a named key'))
    .action((user: string, keyName: string, o: Flags) => withWriter(o, async (writer) => {
      await writer.removeUserKey(user, keyName);
      process.stdout.write(`key ${keyName} removed from user ${user}\n`);
    }));

  withStore(cmd.command('list').description('list users').option('--json', 'print JSON'))
    .action((o: Flags) => withWriter(o, async (writer) => {
      const users = await writer.listUsers();
      if (o.json) printJson(users);
      else printTable(['NAME', 'KEYS'], users.map((u) => [u.name, u.keys.map((k) => k.name).join(',')]));
    }));

  withStore(cmd.command('show <user>').description('show a user and their keys').option('--json', 'print JSON'))
    .action((name: string, o: Flags) => withWriter(o, async (writer) => {
      const u = await writer.getUser(name);
      if (o.json) printJson(u);
      else printTable(['KEYNAME', 'KEY'], u.keys.map((k) => [k.name, k.key]));
    }));

  withStore(cmd.command('rm <user>').description('remove a user who owns no VMs'))
    .action((name: string, o: Flags) => withWriter(o, async (writer) => {
      await writer.removeUser(name);
      process.stdout.write(`user ${name} removed\n`);
    }));
  return cmd;
}
