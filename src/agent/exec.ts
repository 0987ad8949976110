// Runs host tools (ip, nft, qemu) without a shell; failures carry the tool's stderr.
import { execFile } from 'node:child_process';

export class CommandError extends Error {
  constructor(readonly command: string, readonly code: number | string | null, readonly stderr: string) {
    super(`${command} failed (${code}): ${stderr.trim().split('\n').slice(0, 3).join(' / ')}`);
  }
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
}

export function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new CommandError(`${cmd} ${args.slice(0, 4).join(' ')}`, (err as NodeJS.ErrnoException).code ?? null, String(stderr || err.message)));
      else resolve(String(stdout));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
