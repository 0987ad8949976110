// What a VM may boot from: disks, kernels and initrds must resolve (after every symlink) to
// regular files inside one of the host's `agent.imageDirs`. qemu opens them before it drops to
// `agent.user`, so this check is what stops a store writer from handing a VM /etc/shadow or a
// block device. A qcow2's backing chain is walked here, one layer at a time with the format
// each layer records (never probed), and given to qemu explicitly, so qemu reads no file name
// from an image header.
import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, sep } from 'node:path';
import { run } from './exec.js';
import type { LaunchPlan, QemuSpec } from './qemu-args.js';

export type DiskFormat = 'raw' | 'qcow2';
export const DISK_FORMATS: readonly DiskFormat[] = ['raw', 'qcow2'];

/** A refused image: the message is the one line the VM's state and the log show. */
export class ImageRefused extends Error {}

export interface DiskLayer { path: string; format: DiskFormat }

const MAX_CHAIN = 16;

/** The allowed directories, each resolved once; directories that do not exist are dropped. */
export function resolveImageDirs(dirs: string[]): string[] {
  const out: string[] = [];
  for (const d of dirs) {
    if (!isAbsolute(d)) continue;
    try {
      if (statSync(d).isDirectory()) out.push(realpathSync(d));
    } catch { /* missing: nothing inside it is allowed */ }
  }
  return out;
}

/** The real path of an allowed regular file, or ImageRefused naming `what` and why. */
export function allowedImage(what: string, path: string, imageDirs: string[]): string {
  const where = imageDirs.length ? imageDirs.join(', ') : 'none configured';
  if (!isAbsolute(path)) throw new ImageRefused(`${what} "${path}" is not an absolute path`);
  let real: string;
  try {
    real = realpathSync(path);
  } catch (err) {
    throw new ImageRefused(`${what} "${path}" cannot be opened (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  if (!imageDirs.some((d) => real.startsWith(d.endsWith(sep) ? d : d + sep))) {
    throw new ImageRefused(`${what} "${path}" is outside agent.imageDirs (${where})`);
  }
  if (!statSync(real).isFile()) throw new ImageRefused(`${what} "${path}" is not a regular file`);
  return real;
}

interface QemuImgInfo {
  format?: string;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
  'format-specific'?: { type?: string; data?: { 'data-file'?: string } };
}

/**
 * The disk and, for qcow2, its backing chain, top first: every layer checked with
 * `allowedImage`, its format the one the layer above recorded. `qemu-img info` opens one layer
 * at a time (without its backing file), so no unchecked path is ever opened, even by the check.
 */
export async function diskChain(path: string, format: DiskFormat, imageDirs: string[], qemuImg = 'qemu-img'): Promise<DiskLayer[]> {
  const chain: DiskLayer[] = [{ path: allowedImage('disk', path, imageDirs), format }];
  for (;;) {
    const layer = chain[chain.length - 1];
    if (layer.format === 'raw') return chain;
    let info: QemuImgInfo;
    try {
      info = JSON.parse(await run(qemuImg, ['info', '--output=json', '-U', '-f', layer.format, layer.path])) as QemuImgInfo;
    } catch (err) {
      throw new ImageRefused(`disk "${layer.path}" is not a readable ${layer.format} image (${(err as Error).message.split('\n')[0]})`);
    }
    if (info['format-specific']?.data?.['data-file']) {
      throw new ImageRefused(`disk "${layer.path}" uses an external data file, which the agent does not allow`);
    }
    const backing = info['full-backing-filename'] ?? info['backing-filename'];
    if (!backing) return chain;
    if (chain.length >= MAX_CHAIN) throw new ImageRefused(`disk "${path}" has a backing chain deeper than ${MAX_CHAIN}`);
    const recorded = info['backing-filename-format'];
    if (!recorded || !DISK_FORMATS.includes(recorded as DiskFormat)) {
      throw new ImageRefused(`backing file "${backing}" of disk "${layer.path}" has ${recorded ? `format ${recorded}` : 'no recorded format'}: record raw or qcow2 with qemu-img rebase -u -F`);
    }
    chain.push({ path: allowedImage('backing file', backing, imageDirs), format: recorded as DiskFormat });
  }
}

/** Resolves and checks every image of a spec: what qemu will be given. Throws ImageRefused. */
export async function planLaunch(spec: QemuSpec, imageDirs: string[], qemuImg?: string): Promise<LaunchPlan> {
  return {
    spec,
    disk: spec.disk ? await diskChain(spec.disk, spec.diskFormat ?? 'raw', imageDirs, qemuImg) : undefined,
    kernel: spec.kernel ? allowedImage('kernel', spec.kernel, imageDirs) : undefined,
    initrd: spec.initrd ? allowedImage('initrd', spec.initrd, imageDirs) : undefined,
  };
}
