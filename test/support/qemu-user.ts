// The unprivileged user the agent's qemus run as (agent.user), created for the tests that run
// the agent, as deploy/README tells an operator to. Parallel test files may race to create it.
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';

export const QEMU_USER = 'uncloud-qemu';

/** Creates QEMU_USER when missing; returns its uid. */
export function ensureQemuUser(): number {
  const uid = () => Number(execFileSync('id', ['-u', QEMU_USER], { encoding: 'utf8' }).trim());
  try {
    return uid();
  } catch { /* missing */ }
  try {
    execFileSync('useradd', ['--system', '--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', QEMU_USER], { stdio: 'pipe' });
  } catch (err) {
    if ((err as { status?: number }).status !== 9) throw err; // 9: created meanwhile by another test file
  }
  return uid();
}

/** A pino logger whose lines a test can read. */
export function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l.trim()) out.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, stream), lines: () => out };
}
