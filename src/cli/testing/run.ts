// The built CLI as an operator runs it, for tests: one process per command, the store only from
// flags (the environment's UNCLOUD_METADATA_STORE is cleared), exit code and both streams back.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../../dist/cli/main.js');

export interface CliResult { code: number; stdout: string; stderr: string }

export async function cli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { env: { ...process.env, UNCLOUD_METADATA_STORE: '', ...env }, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
