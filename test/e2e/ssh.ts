// Logging in to a guest as its user would: OpenSSH's client, from inside the test's network
// namespace, with one key only (no agent, no other identities), host keys not remembered.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, CommandError } from '../../src/agent/exec.js';

export interface SshKey {
  path: string;
  pub: string;
}

/** A fresh ed25519 key pair in `dir`. */
export function sshKey(dir: string, name: string): SshKey {
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${name}@test`, '-f', path]);
  return { path, pub: readFileSync(`${path}.pub`, 'utf8').trim() };
}

export interface SshResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` as `user@address` with exactly `key`; never throws for a refused login. With
 * `knownHosts`, the host key must be in that file (StrictHostKeyChecking=yes), else it is not checked.
 */
export async function ssh(netns: string, key: SshKey, address: string, command: string, timeoutMs = 120_000, user = 'debian', knownHosts?: string): Promise<SshResult> {
  const hostKeys = knownHosts ? ['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`] : ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null'];
  const args = ['netns', 'exec', netns, 'ssh', '-i', key.path, '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
    '-o', 'BatchMode=yes', ...hostKeys, '-o', 'LogLevel=ERROR',
    '-o', 'ConnectTimeout=10', '-o', 'PreferredAuthentications=publickey', `${user}@${address}`, command];
  try {
    return { ok: true, stdout: await run('ip', args, { timeoutMs }), stderr: '' };
  } catch (err) {
    if (err instanceof CommandError) return { ok: false, stdout: '', stderr: err.stderr };
    throw err;
  }
}
