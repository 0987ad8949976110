// Launching, finding and stopping one VM's qemu. qemu daemonizes itself and writes a pidfile,
// so VMs outlive the agent; a restarted agent finds them again by pidfile plus the `-name` tag
// in the process's command line (a reused pid never passes for our VM).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants } from 'node:fs';
import { accessSync } from 'node:fs';
import { run, CommandError } from './exec.js';
import { qmpCommand } from './qmp.js';

export type Accel = 'kvm' | 'tcg';

export interface QemuSpec {
  key: string; // "<network>/<name>"
  dir: string;
  tap: string;
  mac: string;
  memoryMiB: number;
  cpus: number;
  disk?: string;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
}

export const vmFiles = (dir: string) => ({
  console: join(dir, 'console.log'),
  qmp: join(dir, 'qmp.sock'),
  pid: join(dir, 'qemu.pid'),
  spec: join(dir, 'spec.json'),
});

/** What identifies the running VM's configuration: a change means a restart. */
export function specText(spec: QemuSpec): string {
  const { key, tap, mac, memoryMiB, cpus, disk, kernel, initrd, cmdline } = spec;
  return JSON.stringify({ key, tap, mac, memoryMiB, cpus, disk, kernel, initrd, cmdline });
}

export function qemuArgs(spec: QemuSpec, accel: Accel): string[] {
  const f = vmFiles(spec.dir);
  const args = [
    '-name', `uncloud:${spec.key}`,
    '-accel', accel, ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', String(spec.memoryMiB), '-smp', String(spec.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-chardev', `file,id=serial0,path=${f.console},append=on`, '-serial', 'chardev:serial0',
    '-qmp', `unix:${f.qmp},server=on,wait=off`,
    '-pidfile', f.pid, '-daemonize',
    '-netdev', `tap,id=net0,ifname=${spec.tap},script=no,downscript=no`,
    '-device', `virtio-net-pci,netdev=net0,mac=${spec.mac}`,
  ];
  if (spec.kernel) {
    args.push('-kernel', spec.kernel);
    if (spec.initrd) args.push('-initrd', spec.initrd);
    args.push('-append', spec.cmdline ?? 'console=ttyS0');
  }
  if (spec.disk) args.push('-drive', `file=${spec.disk},if=virtio${/\.qcow2$/.test(spec.disk) ? ',format=qcow2' : ''}`);
  return args;
}

/** Starts the VM; resolves with its pid once qemu has daemonized (the guest is running). */
export async function launchQemu(qemu: string, spec: QemuSpec, accel: Accel): Promise<number> {
  mkdirSync(spec.dir, { recursive: true });
  const f = vmFiles(spec.dir);
  rmSync(f.pid, { force: true });
  rmSync(f.qmp, { force: true });
  // The spec goes down first: an agent killed while qemu starts must find it, or its successor
  // would take the running VM for a changed one and restart it.
  writeFileSync(f.spec, specText(spec));
  await run(qemu, qemuArgs(spec, accel), { timeoutMs: 60_000 });
  const pid = readPid(spec.dir);
  if (!pid) throw new Error(`qemu for ${spec.key} daemonized without writing ${f.pid}`);
  return pid;
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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
