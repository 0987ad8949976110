// `--disk` and `--disk-format` for vm add/set: the format is stored with the disk and always
// given to qemu explicitly. When not given, it is read from the image's header with `qemu-img
// info` here, at the operator's command, once (the agent never probes a disk).
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { fail } from './errors.js';

export type DiskFormat = 'raw' | 'qcow2';

export function detectDiskFormat(path: string, qemuImg = process.env.UNCLOUD_METADATA_QEMU_IMG || 'qemu-img'): DiskFormat {
  const ask = 'give --disk-format raw|qcow2';
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    return fail(`--disk ${path}: cannot read it here to detect its format (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); ${ask}`);
  }
  let out: string;
  try {
    out = execFileSync(qemuImg, ['info', '--output=json', '-U', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') return fail(`--disk ${path}: qemu-img is not installed here to detect its format; ${ask}`);
    const why = (e.stderr ?? '').trim().split('\n').pop()?.replace(/^qemu-img: /, '') || e.message;
    return fail(`--disk ${path}: cannot read it here to detect its format (${why}); ${ask}`);
  }
  const format = (JSON.parse(out) as { format?: string }).format;
  if (format !== 'raw' && format !== 'qcow2') return fail(`--disk ${path} is a ${format ?? 'unknown'} image: only raw and qcow2 are supported`);
  return format;
}

/** The disk fields of a patch: the format given, or detected when a disk is given without one. */
export function diskFields(disk: string | undefined, format: DiskFormat | undefined): { disk?: string; diskFormat?: DiskFormat } {
  if (disk === undefined) return format === undefined ? {} : { diskFormat: format };
  return { disk, diskFormat: format ?? detectDiskFormat(disk) };
}
