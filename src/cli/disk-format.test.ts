// vm add/set --disk with and without --disk-format, through the built CLI on a file store: the
// format is read with the real qemu-img when not given, stored, and shown; a disk may come with
// a kernel, initrd and command line.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'uncloud-cli-disk-'));
const store = ['--store', `file:${join(dir, 'state.json')}`];

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args, ...store], { env: { ...process.env, UNCLOUD_METADATA_STORE: '' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
const show = async (name: string) => JSON.parse((await cli('vm', 'show', name, '--json')).stdout) as { resources: Record<string, unknown> };

describe('vm --disk-format', () => {
  beforeAll(async () => {
    execFileSync('qemu-img', ['create', '-f', 'raw', join(dir, 'a.raw'), '1M'], { stdio: 'pipe' });
    execFileSync('qemu-img', ['create', '-f', 'qcow2', join(dir, 'b.img'), '1M'], { stdio: 'pipe' });
    execFileSync('qemu-img', ['create', '-f', 'vmdk', join(dir, 'c.vmdk'), '1M'], { stdio: 'pipe' });
    writeFileSync(join(dir, 'vmlinuz'), 'k');
    expect((await cli('network', 'add', 'lab', '--prefix6', '2001:db8:8::/64', '--domain', 'lab.example', '--metadata6', '2001:db8:8::1')).code).toBe(0);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the format from the image header when not given: raw, and qcow2 whatever the file is called', async () => {
    expect((await cli('vm', 'add', 'r1', '--network', 'lab', '--disk', join(dir, 'a.raw'))).stderr).toBe('');
    expect((await show('r1')).resources).toMatchObject({ disk: join(dir, 'a.raw'), diskFormat: 'raw' });
    expect((await cli('vm', 'add', 'q1', '--network', 'lab', '--disk', join(dir, 'b.img'))).stderr).toBe('');
    expect((await show('q1')).resources).toMatchObject({ diskFormat: 'qcow2' });
  });

  it('takes --disk-format as given, also for a disk not readable here', async () => {
    expect((await cli('vm', 'add', 'elsewhere', '--network', 'lab', '--disk', '/srv/images/on-hv1.qcow2', '--disk-format', 'qcow2')).code).toBe(0);
    expect((await show('elsewhere')).resources).toMatchObject({ disk: '/srv/images/on-hv1.qcow2', diskFormat: 'qcow2' });
  });

  it('allows a disk with a kernel, initrd and command line, and shows both', async () => {
    const r = await cli('vm', 'add', 'both', '--network', 'lab', '--disk', join(dir, 'a.raw'), '--kernel', join(dir, 'vmlinuz'), '--initrd', join(dir, 'vmlinuz'),
      '--cmdline', 'root=/dev/vda1 ds=nocloud-net;s=http://[2001:db8:8::1]/nocloud/');
    expect(r.stderr).toBe('');
    expect((await show('both')).resources).toMatchObject({ disk: join(dir, 'a.raw'), diskFormat: 'raw', kernel: join(dir, 'vmlinuz'), cmdline: expect.stringContaining('root=/dev/vda1') });
    expect((await cli('vm', 'show', 'both')).stdout).toMatch(/boot\s+.*vmlinuz \+ .*a\.raw \(raw\)/);
  });

  it('vm set: a new disk gets its format read again; --disk-format alone changes only the format', async () => {
    expect((await cli('vm', 'set', 'r1', '--disk', join(dir, 'b.img'))).code).toBe(0);
    expect((await show('r1')).resources).toMatchObject({ disk: join(dir, 'b.img'), diskFormat: 'qcow2' });
    expect((await cli('vm', 'set', 'r1', '--disk-format', 'raw')).code).toBe(0);
    expect((await show('r1')).resources).toMatchObject({ disk: join(dir, 'b.img'), diskFormat: 'raw' });
  });

  it('refuses formats other than raw and qcow2 in one line, writing nothing', async () => {
    const before = (await cli('vm', 'list', '--json')).stdout;
    const r = await cli('vm', 'add', 'v1', '--network', 'lab', '--disk', join(dir, 'c.vmdk'));
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toEqual([`error: --disk ${join(dir, 'c.vmdk')} is a vmdk image: only raw and qcow2 are supported`]);
    const r2 = await cli('vm', 'add', 'v2', '--network', 'lab', '--disk-format', 'raw');
    expect(r2.stderr).toMatch(/diskFormat needs a disk/);
    expect((await cli('vm', 'list', '--json')).stdout).toBe(before);
  });
});
