// The image confinement with real files and the real qemu-img: what a store writer may name as
// a disk, kernel or initrd, and which qcow2 chains qemu is allowed to open.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allowedImage, diskChain, ImageRefused, resolveImageDirs } from './images.js';

const root = mkdtempSync(join(tmpdir(), 'uct-images-'));
const images = join(root, 'images');
const outside = join(root, 'outside');
mkdirSync(images);
mkdirSync(outside);
const img = (...args: string[]) => execFileSync('qemu-img', args, { stdio: 'pipe' });
writeFileSync(join(images, 'vmlinuz'), 'kernel');
writeFileSync(join(outside, 'secret'), 'secret');
img('create', '-f', 'raw', join(images, 'base.raw'), '1M');
img('create', '-f', 'raw', join(outside, 'base.raw'), '1M');
img('create', '-f', 'qcow2', '-F', 'raw', '-b', join(images, 'base.raw'), join(images, 'good.qcow2'));
img('create', '-f', 'qcow2', '-F', 'qcow2', '-b', join(images, 'good.qcow2'), join(images, 'good2.qcow2'));
img('create', '-f', 'qcow2', '-F', 'raw', '-b', join(outside, 'base.raw'), join(images, 'escape.qcow2'));
img('create', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', join(images, 'passwd.qcow2'));
img('create', '-f', 'qcow2', '-F', 'qcow2', '-b', join(images, 'escape.qcow2'), join(images, 'deep-escape.qcow2'));
// qemu-img 7.2 no longer writes a backing file without its format; older images have them. Made
// here by renaming the backing-format header extension (0xe2792aca) to one qemu ignores.
img('create', '-f', 'qcow2', '-F', 'raw', '-b', join(images, 'base.raw'), join(images, 'unformatted.qcow2'));
{
  const path = join(images, 'unformatted.qcow2');
  const bytes = readFileSync(path);
  const at = bytes.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
  if (at < 0 || at > 4096) throw new Error('no backing format extension found');
  Buffer.from([0x12, 0x34, 0x56, 0x78]).copy(bytes, at);
  writeFileSync(path, bytes);
}
img('create', '-f', 'qcow2', '-o', `data_file=${join(outside, 'base.raw')},data_file_raw=on`, join(images, 'datafile.qcow2'), '1M');
img('create', '-f', 'qcow2', '-u', '-F', 'raw', '-b', 'json:{"driver":"file","filename":"/etc/shadow"}', join(images, 'json.qcow2'), '1M');
symlinkSync(join(outside, 'secret'), join(images, 'link-out'));
symlinkSync(join(images, 'vmlinuz'), join(outside, 'link-in'));
symlinkSync('/dev/null', join(images, 'devnull'));
mkdirSync(join(images, 'subdir'));
mkdirSync(`${images}-evil`);
writeFileSync(`${images}-evil/x`, 'x');
const dirs = resolveImageDirs([images, join(root, 'missing'), 'relative/dir']);

afterAll(() => rmSync(root, { recursive: true, force: true }));

const refusal = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ImageRefused);
    expect((err as Error).message).not.toContain('\n');
    return (err as Error).message;
  }
  throw new Error('not refused');
};
const asyncRefusal = async (p: Promise<unknown>) => {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ImageRefused);
  expect((err as Error).message).not.toContain('\n');
  return (err as Error).message;
};

describe('agent.imageDirs', () => {
  it('keeps only existing absolute directories', () => {
    expect(dirs).toEqual([images]);
  });

  it('allows regular files inside, also through a symlink that stays inside, by their real path', () => {
    expect(allowedImage('kernel', join(images, 'vmlinuz'), dirs)).toBe(join(images, 'vmlinuz'));
    expect(allowedImage('kernel', join(outside, 'link-in'), dirs)).toBe(join(images, 'vmlinuz'));
  });

  it('refuses paths outside, symlink escapes, .. escapes, devices, directories and relative paths, in one line', () => {
    expect(refusal(() => allowedImage('disk', '/etc/shadow', dirs))).toBe(`disk "/etc/shadow" is outside agent.imageDirs (${images})`);
    expect(refusal(() => allowedImage('disk', join(images, 'link-out'), dirs))).toMatch(/is outside agent\.imageDirs/);
    expect(refusal(() => allowedImage('disk', `${images}/../outside/secret`, dirs))).toMatch(/is outside agent\.imageDirs/);
    expect(refusal(() => allowedImage('disk', join(images, 'devnull'), dirs))).toMatch(/is outside agent\.imageDirs/);
    expect(refusal(() => allowedImage('disk', join(images, 'subdir'), dirs))).toMatch(/is not a regular file/);
    expect(refusal(() => allowedImage('initrd', 'images/vmlinuz', dirs))).toMatch(/is not an absolute path/);
    expect(refusal(() => allowedImage('disk', join(images, 'missing.raw'), dirs))).toMatch(/cannot be opened \(ENOENT\)/);
    expect(refusal(() => allowedImage('disk', `${images}-evil/x`, dirs))).toMatch(/is outside/); // a sibling sharing the prefix
    expect(refusal(() => allowedImage('kernel', join(images, 'vmlinuz'), []))).toMatch(/\(none configured\)/);
    // A device inside an allowed directory is still refused.
    const devDirs = resolveImageDirs(['/dev']);
    expect(refusal(() => allowedImage('disk', '/dev/null', devDirs))).toMatch(/is not a regular file/);
  });
});

describe('disk chains', () => {
  it('a raw disk is one layer and is never read for a header', async () => {
    expect(await diskChain(join(images, 'base.raw'), 'raw', dirs)).toEqual([{ path: join(images, 'base.raw'), format: 'raw' }]);
    // A raw disk whose guest wrote a qcow2 header (with a backing file) stays raw.
    img('create', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/passwd', join(images, 'looks-qcow2.raw'));
    expect(await diskChain(join(images, 'looks-qcow2.raw'), 'raw', dirs)).toEqual([{ path: join(images, 'looks-qcow2.raw'), format: 'raw' }]);
  });

  it('walks a qcow2 chain inside the directories, with the formats each layer recorded', async () => {
    expect(await diskChain(join(images, 'good2.qcow2'), 'qcow2', dirs)).toEqual([
      { path: join(images, 'good2.qcow2'), format: 'qcow2' },
      { path: join(images, 'good.qcow2'), format: 'qcow2' },
      { path: join(images, 'base.raw'), format: 'raw' },
    ]);
  });

  it('refuses backing files outside, at any depth, without a recorded format, as json: or through a data file', async () => {
    expect(await asyncRefusal(diskChain(join(images, 'escape.qcow2'), 'qcow2', dirs))).toBe(`backing file "${join(outside, 'base.raw')}" is outside agent.imageDirs (${images})`);
    expect(await asyncRefusal(diskChain(join(images, 'passwd.qcow2'), 'qcow2', dirs))).toMatch(/backing file "\/etc\/passwd" is outside/);
    expect(await asyncRefusal(diskChain(join(images, 'deep-escape.qcow2'), 'qcow2', dirs))).toMatch(/backing file ".*outside\/base\.raw" is outside/);
    expect(await asyncRefusal(diskChain(join(images, 'unformatted.qcow2'), 'qcow2', dirs))).toMatch(/has no recorded format: record raw or qcow2 with qemu-img rebase -u -F/);
    expect(await asyncRefusal(diskChain(join(images, 'json.qcow2'), 'qcow2', dirs))).toMatch(/^backing file "json:\{.*" is not an absolute path$/);
    expect(await asyncRefusal(diskChain(join(images, 'datafile.qcow2'), 'qcow2', dirs))).toMatch(/uses an external data file/);
    expect(await asyncRefusal(diskChain(join(images, 'base.raw'), 'qcow2', dirs))).toMatch(/is not a readable qcow2 image/);
  });
});
