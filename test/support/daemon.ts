// Runs the built binary as a user would (`node dist/cli/main.js ...`) and waits for it to serve.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '../../dist/cli/main.js');

export interface Running {
  proc: ChildProcess;
  output: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `uncloud-metadata ARGS`, resolves once `ready(output)` holds (default: the "serving" log line). */
export async function startBin(args: string[], opts: { env?: Record<string, string>; ready?: (out: string) => boolean; timeoutMs?: number } = {}): Promise<Running> {
  const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, UNCLOUD_METADATA_STORE: '', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (b) => (out += b));
  proc.stderr!.on('data', (b) => (out += b));
  const ready = opts.ready ?? ((o: string) => o.includes('"msg":"serving"'));
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  while (!ready(out)) {
    if (proc.exitCode !== null) throw new Error(`uncloud-metadata ${args[0]} exited ${proc.exitCode}: ${out}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`uncloud-metadata ${args[0]} not ready: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    output: () => out,
    stop: (signal = 'SIGTERM') => new Promise((resolve) => {
      if (proc.exitCode !== null) return resolve(proc.exitCode);
      proc.once('exit', (code) => resolve(code));
      proc.kill(signal);
    }),
  };
}
