// qemu's argv for one VM: every value a store writer or the host configuration controls lands
// either inside JSON or with its commas doubled, so none can start another option. (The running
// qemu's view of the same argv is checked in test/reliability/agent-hardening.test.ts.)
import { describe, expect, it } from 'vitest';
import { optValue, qemuArgs, SANDBOX, smbiosSerial, specText, type LaunchPlan, type QemuSpec } from './qemu-args.js';

const spec: QemuSpec = {
  key: 'lab/web1', id: '6f1b8c1e-1111-4222-8333-944455556666', dir: '/var/lib/st,ate/lab/web1', tap: 'uc525400e2e001',
  mac: '52:54:00:e2:e0:01', memoryMiB: 256, cpus: 2, disk: '/img/x.raw,format=raw,file.locking=off', diskFormat: 'raw',
  kernel: '/img/vmlinuz,initrd=shadow', cmdline: 'console=ttyS0,115200 root=/dev/vda1', metadata6: 'fd00::53', user: 'uncloud-qemu',
};
const plan: LaunchPlan = {
  spec, kernel: spec.kernel,
  disk: [{ path: '/img/top,if=none.qcow2', format: 'qcow2' }, { path: '/img/base.raw', format: 'raw' }],
};
const after = (args: string[], opt: string) => args.flatMap((a, i) => (args[i - 1] === opt ? [a] : []));

describe('qemu argv', () => {
  const args = qemuArgs(plan, 'tcg');

  it('gives disks as -blockdev JSON, deepest backing first, with explicit formats and backing links', () => {
    expect(args).not.toContain('-drive');
    expect(after(args, '-blockdev').map((a) => JSON.parse(a))).toEqual([
      { driver: 'file', 'node-name': 'disk0-backing1-file', filename: '/img/base.raw', 'read-only': true },
      { driver: 'raw', 'node-name': 'disk0-backing1', file: 'disk0-backing1-file', 'read-only': true },
      { driver: 'file', 'node-name': 'disk0-file', filename: '/img/top,if=none.qcow2', 'read-only': false },
      { driver: 'qcow2', 'node-name': 'disk0', file: 'disk0-file', 'read-only': false, backing: 'disk0-backing1' },
    ]);
    expect(after(args, '-device').map((a) => JSON.parse(a))).toEqual([
      { driver: 'virtio-net-pci', netdev: 'net0', mac: spec.mac },
      { driver: 'virtio-blk-pci', drive: 'disk0', bootindex: 1 },
    ]);
    // A single qcow2 layer still says it has no backing file (qemu would read one from its header).
    const single = qemuArgs({ spec, disk: [{ path: '/img/a.qcow2', format: 'qcow2' }] }, 'tcg');
    expect(JSON.parse(after(single, '-blockdev')[1])).toMatchObject({ driver: 'qcow2', backing: null });
  });

  it('passes -kernel and -append whole, doubles commas in option lists, and names the VM for cloud-init', () => {
    expect(after(args, '-kernel')).toEqual(['/img/vmlinuz,initrd=shadow']);
    expect(args).not.toContain('-initrd');
    expect(after(args, '-append')).toEqual(['console=ttyS0,115200 root=/dev/vda1']);
    expect(after(args, '-chardev')).toEqual([
      'file,id=serial0,path=/var/lib/st,,ate/lab/web1/console.log,append=on',
      'socket,id=qmp0,path=/var/lib/st,,ate/lab/web1/qmp.sock,server=on,wait=off',
    ]);
    expect(after(args, '-uuid')).toEqual([spec.id]);
    expect(after(args, '-smbios')).toEqual(['type=1,manufacturer=uncloud,product=uncloud-metadata,serial=ds=nocloud-net;s=http://[fd00::53]/nocloud/']);
    expect(optValue(smbiosSerial('fd00::53'))).toBe(smbiosSerial('fd00::53')); // nothing to escape in an address
    expect(optValue('a,b,,c')).toBe('a,,b,,,,c');
    expect(after(args, '-netdev').map((a) => JSON.parse(a))).toEqual([{ type: 'tap', id: 'net0', ifname: spec.tap, script: 'no', downscript: 'no' }]);
  });

  it('drops to the unprivileged user under seccomp and never daemonizes (spawn=deny forbids the fork)', () => {
    expect(after(args, '-runas')).toEqual(['uncloud-qemu']);
    expect(after(args, '-sandbox')).toEqual([SANDBOX]);
    expect(SANDBOX).toBe('on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny');
    expect(args).not.toContain('-daemonize');
  });

  it('restarts a VM when anything it was launched with changes', () => {
    const base = specText(spec);
    for (const change of [{ diskFormat: 'qcow2' as const }, { id: '6f1b8c1e-1111-4222-8333-000000000000' }, { metadata6: 'fd00::54' }, { user: 'other' }, { tap: 'uc525400e2e002' }]) {
      expect(specText({ ...spec, ...change })).not.toBe(base);
    }
  });
});
