// Vitest global setup: one throwaway etcd (Debian's etcd-server) on free loopback ports for the
// whole run; each test file isolates itself under its own key prefix. A missing etcd binary
// fails the run loudly: scripts/test.sh installs it.
import { spawn, type ChildProcess, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from './ports.js';

let etcd: ChildProcess | undefined;
let dir: string | undefined;

declare module 'vitest' {
  export interface ProvidedContext {
    etcdEndpoint: string;
  }
}

/**
 * The command line of a single-member etcd on loopback. `scheme` is the client URLs' (the TLS test
 * adds its certificate flags in `extra`); peers always talk plain HTTP on loopback.
 */
export function etcdArgs(o: { name: string; dataDir: string; client: number; peer: number; scheme?: 'http' | 'https'; extra?: string[] }): string[] {
  const client = `${o.scheme ?? 'http'}://127.0.0.1:${o.client}`;
  const peer = `http://127.0.0.1:${o.peer}`;
  return [
    '--name', o.name, '--data-dir', o.dataDir,
    '--listen-client-urls', client, '--advertise-client-urls', client,
    '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `${o.name}=${peer}`,
    ...(o.extra ?? []),
    '--log-level', 'error', '--logger', 'zap',
  ];
}

export async function startEtcd(): Promise<{ endpoint: string; proc: ChildProcess; dir: string; peer: number; client: number }> {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('etcd is not installed: run `bash scripts/prereqs.sh` (installs Debian etcd-server)');
  }
  const d = mkdtempSync(join(tmpdir(), 'uncloud-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const proc = spawn('etcd', etcdArgs({ name: 'test', dataDir: d, client, peer }), { stdio: ['ignore', 'ignore', 'pipe'] });
  const endpoint = `127.0.0.1:${client}`;
  await waitForEtcd(endpoint, proc);
  return { endpoint, proc, dir: d, peer, client };
}

export async function waitForEtcd(endpoint: string, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  let stderr = '';
  proc?.stderr?.on('data', (b) => (stderr += b));
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`etcd exited: ${stderr}`);
    try {
      const res = await fetch(`http://${endpoint}/health`);
      if (res.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`etcd did not come up on ${endpoint}: ${stderr}`);
}

export default async function setup(project: TestProject) {
  const started = await startEtcd();
  etcd = started.proc;
  dir = started.dir;
  project.provide('etcdEndpoint', started.endpoint);
  return async () => {
    etcd?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}
