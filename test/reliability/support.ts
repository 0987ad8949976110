// Shared parts of the reliability scenarios: an etcd of our own that can be killed, restarted,
// snapshotted and restored on fixed ports; the built daemon on free ports; a resolver and an
// HTTP client that can pick their source address; RSS sampling; and `figure`, which prints a
// scenario's numbers and appends them to a JSON-lines file for the record.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../support/ports.js';
import { etcdArgs, waitForEtcd } from '../support/etcd-global.js';
import { startBin, type Running } from '../support/daemon.js';

export const exec = promisify(execFile);

export const FIGURES = process.env.RELIABILITY_FIGURES ?? join(tmpdir(), 'uncloud-reliability-figures.jsonl');

/** Prints a scenario's figure and records it (one JSON line per figure). */
export function figure(scenario: string, numbers: Record<string, unknown>): void {
  const line = JSON.stringify({ scenario, at: new Date().toISOString(), ...numbers });
  process.stdout.write(`[figure] ${line}\n`);
  appendFileSync(FIGURES, `${line}\n`);
}

/** A single-member etcd on fixed loopback ports, ours to kill, freeze, snapshot and restore. */
export class OwnEtcd {
  proc?: ChildProcess;
  dataDir: string;
  private readonly root: string;
  private generation = 0;

  private constructor(readonly client: number, readonly peer: number) {
    this.root = mkdtempSync(join(tmpdir(), 'uncloud-rel-etcd-'));
    this.dataDir = join(this.root, 'data0');
  }

  static async start(): Promise<OwnEtcd> {
    const e = new OwnEtcd(await freePort(), await freePort());
    await e.up();
    return e;
  }

  get endpoint(): string { return `127.0.0.1:${this.client}`; }
  get url(): string { return `etcd://${this.endpoint}`; }

  /** Starts (again) on the same ports and the current data directory. */
  async up(): Promise<void> {
    this.proc = spawn('etcd', etcdArgs({ name: 'rel', dataDir: this.dataDir, client: this.client, peer: this.peer }), { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitForEtcd(this.endpoint, this.proc);
  }

  async kill(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  }

  etcdctl(...args: string[]): Promise<{ stdout: string }> {
    return exec('etcdctl', ['--endpoints', this.endpoint, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
  }

  /** Cluster id, member id and revision from a status call. */
  async status(): Promise<{ clusterId: string; memberId: string; revision: number; raftTerm: number }> {
    const s = JSON.parse((await this.etcdctl('endpoint', 'status', '-w', 'json')).stdout)[0].Status.header;
    return { clusterId: String(s.cluster_id), memberId: String(s.member_id), revision: Number(s.revision), raftTerm: Number(s.raft_term) };
  }

  async snapshot(): Promise<string> {
    const file = join(this.root, `snap-${Date.now()}.db`);
    await this.etcdctl('snapshot', 'save', file);
    return file;
  }

  /** Kills etcd and starts it on a fresh data directory restored from `file`, as an operator would. */
  async restore(file: string): Promise<void> {
    await this.kill();
    this.dataDir = join(this.root, `data${++this.generation}`);
    await exec('etcdctl', ['snapshot', 'restore', file, '--data-dir', this.dataDir, '--name', 'rel',
      '--initial-cluster', `rel=http://127.0.0.1:${this.peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${this.peer}`],
    { env: { ...process.env, ETCDCTL_API: '3' } });
    await this.up();
  }

  async close(): Promise<void> {
    await this.kill();
    rmSync(this.root, { recursive: true, force: true });
  }
}

export interface Daemon {
  run: Running;
  dnsPort: number;
  httpPort: number;
  adminPort: number;
  readyz(): Promise<{ status: string; revision: number; vms: number; store?: string }>;
  rssKiB(): number;
  resolver(): Resolver;
}

/** The built `serve` on free loopback ports (v6 and v4 for DNS and HTTP, admin on [::1]). */
export async function startDaemon(storeUrl: string, prefix: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Daemon> {
  const [dnsPort, httpPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const run = await startBin(['serve', '--store', storeUrl, '--prefix', prefix,
    '--dns', `[::1]:${dnsPort}`, '--dns', `127.0.0.1:${dnsPort}`, '--http', `[::1]:${httpPort}`, '--http', `127.0.0.1:${httpPort}`,
    '--admin', `[::1]:${adminPort}`, ...extra], { env });
  return {
    run, dnsPort, httpPort, adminPort,
    readyz: async () => JSON.parse((await httpGet(`http://[::1]:${adminPort}/readyz`)).body),
    rssKiB: () => rssKiB(run.proc.pid!),
    resolver: () => {
      const r = new Resolver({ timeout: 1000, tries: 2 });
      r.setServers([`[::1]:${dnsPort}`]);
      return r;
    },
  };
}

export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

export interface HttpAnswer { status: number; body: string; headers: Record<string, string | string[] | undefined> }

/** One HTTP request with a chosen source address (identity rests on it). */
export function httpGet(url: string, opts: { localAddress?: string; headers?: Record<string, string>; method?: string; timeoutMs?: number; body?: string | Buffer } = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** AAAA answers for a name, or 'NXDOMAIN' / the error code. */
export async function aaaa(r: Resolver, name: string): Promise<string[] | string> {
  try {
    return (await r.resolve6(name)).sort();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return code === 'ENOTFOUND' ? 'NXDOMAIN' : code;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `check` is truthy; returns how long it took. */
export async function within(ms: number, check: () => Promise<unknown> | unknown, what = 'condition'): Promise<number> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return Date.now() - t0;
    } catch (err) {
      last = err;
    }
    if (Date.now() - t0 > ms) throw new Error(`${what} not met within ${ms} ms${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(25);
  }
}
