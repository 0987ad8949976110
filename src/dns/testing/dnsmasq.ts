// Starts Debian's dnsmasq as a real upstream for forwarding tests: authoritative for one zone
// (so negative answers carry a SOA, as RFC 2308 caching needs), logging every query it gets.
// Test-only (it is compiled with src, so it imports nothing from test/).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

export interface Dnsmasq {
  port: number;
  /** How many queries for `name` (and type, if given) dnsmasq has received so far. */
  queriesFor(name: string, type?: string): number;
  close(): Promise<void>;
}

export interface DnsmasqOptions {
  port: number;
  /** Authoritative zone (with `hostRecords`); leave out for a pure forwarder. */
  zone?: string;
  hostRecords?: string[];
  ttl?: number;
  /** Upstreams as dnsmasq spells them (`127.0.0.1#5353`): dnsmasq as the forwarding peer. */
  servers?: string[];
  extra?: string[];
}

export async function startDnsmasq(opts: DnsmasqOptions): Promise<Dnsmasq> {
  const port = opts.port;
  const dir = mkdtempSync(join(tmpdir(), 'uncloud-dnsmasq-'));
  const log = join(dir, 'queries.log');
  const proc: ChildProcess = spawn('/usr/sbin/dnsmasq', [
    '-k', '--no-resolv', '--no-hosts', `--port=${port}`, '--listen-address=127.0.0.1', '--bind-interfaces',
    ...(opts.hostRecords ?? []).map((h) => `--host-record=${h}`),
    ...(opts.zone ? [`--auth-zone=${opts.zone}`, `--auth-server=ns.${opts.zone},127.0.0.1`] : []),
    ...(opts.ttl !== undefined ? [`--auth-ttl=${opts.ttl}`, `--local-ttl=${opts.ttl}`] : []),
    ...(opts.servers ?? []).map((s) => `--server=${s}`), ...(opts.extra ?? []),
    '--log-queries', `--log-facility=${log}`, `--pid-file=${join(dir, 'pid')}`, `--user=${userInfo().username}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (d) => (stderr += d));
  const read = () => { try { return readFileSync(log, 'utf8'); } catch { return ''; } };
  const deadline = Date.now() + 10_000;
  while (!/started, version/.test(read())) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`dnsmasq did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    port,
    queriesFor(name, type) {
      const re = new RegExp(`\\]: (?:auth|query)\\[${type ?? '[A-Z]+'}\\] ${name.replace(/\./g, '\\.')} from`, 'gi');
      return (read().match(re) ?? []).length;
    },
    async close() {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
