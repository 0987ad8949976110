// Load generators, bounded in time: dnsperf for DNS, wrk for HTTP. Both on loopback only.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './proc.mjs';

const dir = mkdtempSync(join(tmpdir(), 'uncloud-bench-load-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** dnsperf over `queries` ("name TYPE" lines) for `seconds`; qps and the rcode summary. */
export async function dnsperf(port, queries, seconds, { clients = 4, outstanding = 200 } = {}) {
  const file = join(dir, `q${files++}.txt`);
  writeFileSync(file, `${queries.join('\n')}\n`);
  const out = await run('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', file, '-l', String(seconds), '-c', String(clients), '-q', String(outstanding), '-t', '2'],
    { timeoutMs: (seconds + 15) * 1000 });
  const qps = Number(/Queries per second:\s+([\d.]+)/.exec(out)?.[1]);
  const lost = Number(/Queries lost:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const rcodes = /Response codes:\s+(.*)/.exec(out)?.[1] ?? '';
  const avgMs = Number(/Average Latency \(s\):\s+([\d.]+)/.exec(out)?.[1]) * 1000;
  if (!rcodes.startsWith('NOERROR') || /NXDOMAIN|SERVFAIL|FORMERR|REFUSED/.test(rcodes)) throw new Error(`dnsperf on port ${port}: unexpected answers ${rcodes}`);
  return { qps, lost, avgMs };
}

/** wrk against one URL for `seconds`; requests/s and latency percentiles (ms). */
export async function wrk(url, seconds, { connections = 32, headers = [] } = {}) {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '2s', ...headers.flatMap((h) => ['-H', h]), url];
  const out = await run('wrk', args, { timeoutMs: (seconds + 15) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (!m) return NaN;
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 })[m[2]];
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:.*/.exec(out)?.[0];
  if (non2xx) throw new Error(`wrk ${url}: ${non2xx} non-2xx answers`);
  return { rps, p50: pct(50), p99: pct(99), errors };
}
