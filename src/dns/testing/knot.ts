// Starts Debian's Knot DNS (knotd) serving given zones on loopback: the authoritative peer our
// answers are compared with. Test-only (compiled with src, imports nothing from test/).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dig } from './dig.js';

export interface Knot {
  port: number;
  close(): Promise<void>;
}

export interface KnotOptions {
  port: number;
  /** Zone apex (no trailing dot) -> zone file text (records may use `@` and relative names). */
  zones: Record<string, string>;
  /** Extra lines under `server:` (e.g. `identity: ...`, `version: ...`, `nsid: ...`). */
  server?: string[];
  /** Extra lines under the default template (e.g. `dnssec-signing: on`: Knot signs every zone). */
  template?: string[];
  /** Whole sections placed before `template:` (e.g. a `policy:` the template names). */
  sections?: string[];
}

/** A zone file's head: SOA and NS at the apex, as our authority writes them. */
export function knotZoneHead(apex: string, domain: string, ttl = 30): string {
  return [
    `$ORIGIN ${apex}.`,
    `$TTL ${ttl}`,
    `@ SOA metadata.${domain}. hostmaster.${domain}. 1 3600 600 86400 ${ttl}`,
    `@ NS metadata.${domain}.`,
  ].join('\n');
}

export async function startKnot(opts: KnotOptions): Promise<Knot> {
  const dir = mkdtempSync(join(tmpdir(), 'uncloud-knot-'));
  const zoneList = Object.keys(opts.zones);
  for (const apex of zoneList) writeFileSync(join(dir, `${apex}.zone`), `${opts.zones[apex]}\n`);
  writeFileSync(join(dir, 'knot.conf'), [
    'server:',
    `    rundir: "${dir}"`,
    `    listen: 127.0.0.1@${opts.port}`,
    ...(opts.server ?? []).map((l) => `    ${l}`),
    'log:',
    '  - target: stderr',
    '    any: warning',
    'database:',
    `    storage: "${dir}"`,
    ...(opts.sections ?? []),
    'template:',
    '  - id: default',
    `    storage: "${dir}"`,
    '    file: "%s.zone"',
    '    zonefile-sync: -1',
    ...(opts.template ?? []).map((l) => `    ${l}`),
    '    journal-content: none',
    'zone:',
    ...zoneList.map((z) => `  - domain: "${z}."`),
  ].join('\n'));
  const proc: ChildProcess = spawn('/usr/sbin/knotd', ['-c', join(dir, 'knot.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  const close = async () => {
    if (proc.exitCode === null) {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready when every zone answers its SOA (zones load after the server starts).
  const deadline = Date.now() + 20_000;
  for (const apex of zoneList) {
    for (;;) {
      if (proc.exitCode !== null || Date.now() > deadline) {
        await close();
        throw new Error(`knotd did not serve ${apex}: ${stderr}`);
      }
      const r = await dig('127.0.0.1', opts.port, ['+norec', '+time=1', apex, 'SOA']).catch(() => undefined);
      if (r?.status === 'NOERROR' && r.answer.length) break;
      await new Promise((res) => setTimeout(res, 50));
    }
  }
  return { port: opts.port, close };
}
