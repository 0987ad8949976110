// qemu's command line for one VM, built so no field can add an option: block devices, the NIC
// and the disk controller are JSON (-blockdev, -netdev, -device), every value that goes into a
// key=value option list has its commas doubled (qemu's escape), and -kernel/-initrd/-append
// take their argument whole. Paths reaching here were already confined by images.ts.
import { join } from 'node:path';
import type { DiskFormat, DiskLayer } from './images.js';

export type Accel = 'kvm' | 'tcg';

/** What the store asks for one VM: when this changes, the VM restarts. */
export interface QemuSpec {
  key: string; // "<network>/<name>"
  /** The VM's id: its SMBIOS UUID (-uuid). */
  id: string;
  dir: string;
  tap: string;
  mac: string;
  memoryMiB: number;
  cpus: number;
  disk?: string;
  diskFormat?: DiskFormat;
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  /** The network's metadata address, for the NoCloud seed URL in the SMBIOS serial. */
  metadata6: string;
  /** The unprivileged user qemu drops to (-runas). */
  user: string;
}

/** A spec with its images resolved and checked: what qemu is actually given. */
export interface LaunchPlan {
  spec: QemuSpec;
  /** The disk, then its backing chain. */
  disk?: DiskLayer[];
  kernel?: string;
  initrd?: string;
}

/**
 * seccomp: no obsolete syscalls, no fork/exec, no scheduler or affinity changes. Set*id stays
 * allowed because -runas needs setuid after the filter is in place (qemu 7.2 dies at -runas with
 * elevateprivileges=deny); once it ran, qemu has no capability left to regain anything with.
 */
export const SANDBOX = 'on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny';

export const vmFiles = (dir: string) => ({
  console: join(dir, 'console.log'),
  qmp: join(dir, 'qmp.sock'),
  pid: join(dir, 'qemu.pid'),
  spec: join(dir, 'spec.json'),
  /** qemu's own stdout and stderr (it no longer daemonizes: -sandbox spawn=deny forbids the fork). */
  output: join(dir, 'qemu.out'),
  /** The tap this directory's VM uses, written before the tap is created. */
  tap: join(dir, 'tap'),
});

/** A value inside a qemu `key=value,...` option list: commas doubled. */
export const optValue = (s: string): string => s.replace(/,/g, ',,');

/** ds-identify picks NoCloud from `ds=nocloud-net` in the DMI serial; the seed is fetched by address, no DNS needed. */
export function smbiosSerial(metadata6: string): string {
  return `ds=nocloud-net;s=http://[${metadata6}]/nocloud/`;
}

/** What identifies the running VM's configuration: a change means a restart. */
export function specText(spec: QemuSpec): string {
  const { key, id, tap, mac, memoryMiB, cpus, disk, diskFormat, kernel, initrd, cmdline, metadata6, user } = spec;
  return JSON.stringify({ key, id, tap, mac, memoryMiB, cpus, disk, diskFormat, kernel, initrd, cmdline, metadata6, user });
}

/** The -blockdev nodes of a disk chain, deepest backing first (a node must exist before it is referenced). */
function blockdevs(chain: DiskLayer[]): string[] {
  const node = (i: number) => (i === 0 ? 'disk0' : `disk0-backing${i}`);
  const args: string[] = [];
  for (let i = chain.length - 1; i >= 0; i--) {
    const { path, format } = chain[i];
    const readOnly = i > 0;
    args.push('-blockdev', JSON.stringify({ driver: 'file', 'node-name': `${node(i)}-file`, filename: path, 'read-only': readOnly }));
    const fmt: Record<string, unknown> = { driver: format, 'node-name': node(i), file: `${node(i)}-file`, 'read-only': readOnly };
    // qcow2 would otherwise open whatever backing file its header names: always say it here.
    if (format === 'qcow2') fmt.backing = i + 1 < chain.length ? node(i + 1) : null;
    args.push('-blockdev', JSON.stringify(fmt));
  }
  return args;
}

export function qemuArgs(plan: LaunchPlan, accel: Accel): string[] {
  const { spec } = plan;
  const f = vmFiles(spec.dir);
  const args = [
    '-name', optValue(`uncloud:${spec.key}`),
    '-uuid', spec.id,
    '-smbios', `type=1,manufacturer=uncloud,product=uncloud-metadata,serial=${optValue(smbiosSerial(spec.metadata6))}`,
    '-accel', accel, ...(accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m', String(spec.memoryMiB), '-smp', String(spec.cpus),
    '-nodefaults', '-no-user-config', '-display', 'none',
    '-chardev', `file,id=serial0,path=${optValue(f.console)},append=on`, '-serial', 'chardev:serial0',
    '-chardev', `socket,id=qmp0,path=${optValue(f.qmp)},server=on,wait=off`, '-mon', 'chardev=qmp0,mode=control',
    '-pidfile', f.pid,
    '-runas', spec.user,
    '-sandbox', SANDBOX,
    '-netdev', JSON.stringify({ type: 'tap', id: 'net0', ifname: spec.tap, script: 'no', downscript: 'no' }),
    '-device', JSON.stringify({ driver: 'virtio-net-pci', netdev: 'net0', mac: spec.mac }),
  ];
  if (plan.kernel) {
    args.push('-kernel', plan.kernel);
    if (plan.initrd) args.push('-initrd', plan.initrd);
    args.push('-append', spec.cmdline ?? 'console=ttyS0');
  }
  if (plan.disk?.length) {
    args.push(...blockdevs(plan.disk), '-device', JSON.stringify({ driver: 'virtio-blk-pci', drive: 'disk0', bootindex: 1 }));
  }
  return args;
}
