// The guest for the VM test: Debian's kernel and the cached busybox initramfs (scripts/vm-assets.sh)
// plus a second archive holding /test.sh, which the base /init runs once SLAAC gave eth0 an address.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

export interface GuestImage {
  kernel: string;
  initrd: string;
}

/** Builds (once, cached) the kernel and base initramfs; returns their directory. */
export function vmAssets(): string {
  return execFileSync('bash', [join(REPO, 'scripts/vm-assets.sh')], { encoding: 'utf8', timeout: 600_000 }).trim().split('\n').pop()!;
}

/** The guest with /test.sh and, optionally, extra executables under /bin (name -> host path). */
export function guestImage(testScript: string, binaries: Record<string, string> = {}): GuestImage {
  const assets = vmAssets();
  const dir = mkdtempSync(join(tmpdir(), 'uct-guest-'));
  writeFileSync(join(dir, 'test.sh'), testScript);
  chmodSync(join(dir, 'test.sh'), 0o755);
  const files = ['test.sh'];
  for (const [name, path] of Object.entries(binaries)) {
    mkdirSync(join(dir, 'bin'), { recursive: true });
    copyFileSync(path, join(dir, 'bin', name));
    chmodSync(join(dir, 'bin', name), 0o755);
    files.push(`bin/${name}`);
  }
  const initrd = join(dir, 'initrd.cpio.gz');
  copyFileSync(join(assets, 'base.cpio.gz'), initrd);
  // The kernel unpacks concatenated archives in order: this one adds /test.sh (and binaries) to the base.
  const extra = execFileSync('sh', ['-c', 'cpio -o -H newc --quiet | gzip -1'], { cwd: dir, input: `${files.join('\n')}\n` });
  appendFileSync(initrd, extra);
  return { kernel: join(assets, 'vmlinuz'), initrd };
}

/** The lines between "GUEST: NAME-begin" and "GUEST: NAME-end" on the serial console. */
export function section(consoleText: string, name: string): string {
  const m = new RegExp(`GUEST: ${name}-begin\\r?\\n([\\s\\S]*?)GUEST: ${name}-end`).exec(consoleText);
  return m ? m[1] : '';
}

export function readConsole(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
