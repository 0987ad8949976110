// Real clients for the HTTP tests, run as separate processes: curl, cloud-init's Python readers
// and Node SDKs. Nothing here answers for the server; it only asks and reports what came back.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string; cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export interface CurlResult { status: number; headers: Record<string, string>; body: string; ms: number }

export interface CurlOptions {
  method?: string;
  headers?: Record<string, string>;
  /** Source address to bind (curl --interface). */
  from?: string;
  /** Run inside this network namespace. */
  netns?: string;
  /** Send the target as written (no dot-segment squashing). */
  pathAsIs?: boolean;
  maxTimeSec?: number;
}

/** One request with curl; the status, lower-cased headers (first value) and body. */
export async function curl(url: string, o: CurlOptions = {}): Promise<CurlResult> {
  const dir = mkdtempSync(join(tmpdir(), 'uc-curl-'));
  try {
    const args = ['-sS', '-g', '-o', join(dir, 'body'), '-D', join(dir, 'head'), '-w', '%{http_code}', '--max-time', String(o.maxTimeSec ?? 20)];
    if (o.method) args.push('-X', o.method);
    for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}: ${v}`);
    if (o.from) args.push('--interface', o.from);
    if (o.pathAsIs) args.push('--path-as-is');
    args.push(url);
    const started = Date.now();
    const r = o.netns ? await run('ip', ['netns', 'exec', o.netns, 'curl', ...args]) : await run('curl', args);
    const ms = Date.now() - started;
    if (r.code !== 0) throw new Error(`curl ${url} failed (${r.code}): ${r.stderr}`);
    const headers: Record<string, string> = {};
    for (const line of readFileSync(join(dir, 'head'), 'utf8').split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).toLowerCase()] ??= line.slice(i + 1).trim();
    }
    let body = '';
    try { body = readFileSync(join(dir, 'body'), 'utf8'); } catch { /* HEAD */ }
    return { status: Number(r.stdout.trim()), headers, body, ms };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a Python snippet with Debian's cloud-init on the path; it must print one JSON value. */
export async function python(code: string, args: string[] = []): Promise<unknown> {
  const r = await run('/usr/bin/python3', ['-c', code, ...args], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`python failed (${r.code}): ${r.stderr.slice(-2000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** Runs an ES module snippet in a fresh Node process (SDKs that read env at import); prints JSON. */
export async function nodeScript(code: string, env: Record<string, string>, cwd: string): Promise<unknown> {
  const r = await run(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, ...env }, cwd, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`node failed (${r.code}): ${r.stderr.slice(-2000)}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

/** One request with node:http (no process start-up), target sent exactly as written. */
export function httpGet(host: string, port: number, path: string, o: { from?: string; headers?: Record<string, string>; method?: string } = {}): Promise<CurlResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: o.method ?? 'GET', headers: o.headers, localAddress: o.from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v[0] : String(v);
        resolve({ status: res.statusCode ?? 0, headers, body, ms: Date.now() - started });
      });
    });
    req.on('error', reject);
    req.end();
  });
}
