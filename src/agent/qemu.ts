// Launching, finding and stopping one VM's qemu. qemu runs detached and writes a pidfile, so
// VMs outlive the agent; a restarted agent finds them again by pidfile plus the `-name` tag in
// the process's command line (a reused pid never passes for our VM).
import { accessSync, closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, CommandError } from './exec.js';
import { qmpCommand } from './qmp.js';
import { qemuArgs, specText, vmFiles, type Accel, type LaunchPlan } from './qemu-args.js';

export { vmFiles, specText, type Accel, type QemuSpec, type LaunchPlan } from './qemu-args.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The last line qemu wrote before it exited: its error. */
function lastLine(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').filter(Boolean).pop() ?? '';
  } catch {
    return '';
  }
}

/**
 * Starts the VM and resolves with its pid once it answers on QMP. qemu runs detached (its own
 * session, output to qemu.out in the VM's directory), so it outlives the agent; it cannot
 * daemonize itself under `-sandbox spawn=deny`.
 */
export async function launchQemu(qemu: string, plan: LaunchPlan, accel: Accel, timeoutMs = 60_000): Promise<number> {
  const { spec } = plan;
  mkdirSync(spec.dir, { recursive: true });
  const f = vmFiles(spec.dir);
  rmSync(f.pid, { force: true });
  rmSync(f.qmp, { force: true });
  // The spec goes down first: an agent killed while qemu starts must find it, or its successor
  // would take the running VM for a changed one and restart it.
  writeFileSync(f.spec, specText(spec));
  const out = openSync(f.output, 'w');
  let exited: string | undefined;
  try {
    const child = spawn(qemu, qemuArgs(plan, accel), { detached: true, stdio: ['ignore', out, out] });
    child.on('error', (err) => { exited = err.message; });
    child.on('exit', (code, signal) => { exited = `exited ${signal ?? code}`; });
    child.unref();
  } finally {
    closeSync(out);
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (exited !== undefined) throw new Error(lastLine(f.output) || `qemu ${exited}`);
    const pid = readPid(spec.dir);
    if (pid && existsSync(f.qmp)) {
      try {
        await qmpCommand(f.qmp, 'query-status', undefined, 2000);
        return pid;
      } catch { /* not listening yet */ }
    }
    if (Date.now() > deadline) {
      if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
      throw new Error(`qemu for ${spec.key} did not answer on QMP within ${timeoutMs} ms`);
    }
    await sleep(50);
  }
}

export function readPid(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(vmFiles(dir).pid, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function readSpec(dir: string): string | undefined {
  try {
    return readFileSync(vmFiles(dir).spec, 'utf8');
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is the qemu we launched for `key` (zombies have no cmdline). */
export function isOurQemu(pid: number, key: string): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('-name');
    return i >= 0 && argv[i + 1] === `uncloud:${key}`;
  } catch {
    return false;
  }
}

async function waitGone(pid: number, key: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isOurQemu(pid, key)) return true;
    await sleep(100);
  }
  return !isOurQemu(pid, key);
}

/** ACPI power-down through QMP, then SIGTERM, then SIGKILL. Returns how it ended. */
export async function stopQemu(dir: string, key: string, timeoutMs: number): Promise<'powerdown' | 'term' | 'kill' | 'gone'> {
  const pid = readPid(dir);
  const f = vmFiles(dir);
  let how: 'powerdown' | 'term' | 'kill' | 'gone' = 'gone';
  if (pid && isOurQemu(pid, key)) {
    await qmpCommand(f.qmp, 'system_powerdown').catch(() => undefined);
    how = 'powerdown';
    if (!(await waitGone(pid, key, timeoutMs))) {
      how = 'term';
      try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
      if (!(await waitGone(pid, key, 3000))) {
        how = 'kill';
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
        await waitGone(pid, key, 3000);
      }
    }
  }
  rmSync(f.pid, { force: true });
  rmSync(f.qmp, { force: true });
  rmSync(f.spec, { force: true });
  return how;
}

/**
 * kvm when /dev/kvm is usable and actually runs guest code: a one-sector boot image writes to
 * the isa-debug-exit port, which makes qemu exit with status 3. A KVM that hangs (as on nested
 * or restricted hosts) times out and we fall back to tcg.
 */
export async function probeAccel(qemu: string, timeoutMs = 4000): Promise<Accel> {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
  } catch {
    return 'tcg';
  }
  const dir = mkdtempSync(join(tmpdir(), 'uncloud-kvm-probe-'));
  const img = join(dir, 'probe.img');
  // mov al,1; out 0xf4,al; hlt; jmp $-3 ... boot signature.
  const sector = Buffer.alloc(512);
  Buffer.from([0xb0, 0x01, 0xe6, 0xf4, 0xf4, 0xeb, 0xfd]).copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  writeFileSync(img, sector);
  try {
    await run(qemu, ['-accel', 'kvm', '-nodefaults', '-no-user-config', '-display', 'none', '-m', '16',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-drive', `file=${img},format=raw,if=floppy`, '-boot', 'a'],
    { timeoutMs });
    return 'tcg'; // exited 0: did not run our code
  } catch (err) {
    return err instanceof CommandError && err.code === 3 ? 'kvm' : 'tcg';
  } finally {
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
  }
}
