// Several operators at once, as real processes on the run's etcd (CLI commands, and operator
// processes driving the CLI's StoreWriter for volume): concurrent `vm add` gets
// unique MACs and names with nothing lost, contested names go to exactly one of them, and
// `vm set` racing `vm set` on different fields keeps every field (compare-and-swap, retried).
import { execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../support/store.js';
import { BIN } from '../support/daemon.js';
import { figure } from './support.js';

const PROCS = Number(process.env.OPERATOR_PROCS ?? 8);
const PER_PROC = Number(process.env.OPERATOR_ADDS ?? 25);
/** OPERATOR_CLI=1: every add through its own CLI process (~0.6 s of CPU each: minutes on 2 cores). */
const ALL_CLI = process.env.OPERATOR_CLI === '1';
const OPERATOR = join(import.meta.dirname, 'fixtures/operator.mjs');

interface Outcome { code: number | null; stdout: string; stderr: string }

/** One shell per operator, running its CLI commands one after another; one line of output per command. */
function operator(commands: string[][]): Promise<Outcome[]> {
  const script = commands.map((args, i) =>
    `out=$("$NODE" "$BIN" ${args.map((a) => `'${a}'`).join(' ')} 2>&1); echo "${i} $? $(printf %s "$out" | tr '\\n' ' ')"`).join('\n');
  return new Promise((resolve, reject) => {
    const p = spawn('sh', ['-c', script], { env: { ...process.env, NODE: process.execPath, BIN }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (err += b));
    p.on('error', reject);
    p.on('exit', () => {
      const lines = out.trim().split('\n').filter(Boolean);
      if (lines.length !== commands.length) return reject(new Error(`operator printed ${lines.length} lines for ${commands.length} commands: ${out}${err}`));
      resolve(lines.map((l) => {
        const m = /^(\d+) (\d+) ?(.*)$/.exec(l)!;
        return { code: Number(m[2]), stdout: m[3], stderr: m[3] };
      }));
    });
  });
}


/** An operator process writing through the StoreWriter (fixtures/operator.mjs). */
async function writerProcess(args: string[]): Promise<{ ok: number; failed: string[] }> {
  const { stdout } = await promisify(execFile)(process.execPath, [OPERATOR, ...args], { timeout: 120_000 });
  return JSON.parse(stdout);
}

describe('concurrent operators', () => {
  const t = etcdTestStore();
  const store = () => ['--store', t.url, '--prefix', t.prefix];

  beforeAll(async () => {
    await t.writer.addNetwork({ name: 'ops', prefix6: 'fd00:99::/64', domain: 'ops.test', metadata6: 'fd00:99::2' });
  });
  afterAll(async () => { await t.close(); });

  it(`${PROCS} processes x ${PER_PROC} vm add at once: unique MACs and names, none lost; CLI processes racing for one name: exactly one wins`, async () => {
    const contested = ['contested-a', 'contested-b'];
    const cliAdds = async () => (await Promise.all(Array.from({ length: PROCS }, (_, p) =>
      operator(Array.from({ length: PER_PROC }, (_, i) => ['vm', 'add', `op${p}-${i}`, '--network', 'ops', ...store()])))))
      .map((r) => ({ ok: r.filter((o) => o.code === 0).length, failed: r.filter((o) => o.code !== 0).map((o) => o.stderr) }));
    const t0 = Date.now();
    const [adds, cli] = await Promise.all([
      ALL_CLI ? cliAdds() : Promise.all(Array.from({ length: PROCS }, (_, p) => writerProcess([t.url, t.prefix, 'add', 'ops', `op${p}`, String(PER_PROC)]))),
      Promise.all(Array.from({ length: PROCS }, (_, p) => operator(contested.map((name) => ['vm', 'add', name, '--network', 'ops', '--meta', `by=op${p}`, ...store()])))),
    ]);
    const ms = Date.now() - t0;
    expect(adds.flatMap((a) => a.failed)).toEqual([]);
    expect(adds.reduce((n, a) => n + a.ok, 0)).toBe(PROCS * PER_PROC);
    const contestedWins = contested.map((_, c) => cli.filter((r) => r[c].code === 0).length);
    expect(contestedWins).toEqual(contested.map(() => 1));
    // The losers got a one-line "already exists", not a crash or a retry storm.
    const losers = cli.flat().filter((o) => o.code !== 0);
    expect(losers.length).toBe(contested.length * (PROCS - 1));
    for (const l of losers) expect(l.stderr).toMatch(/^error: VM "contested-.*" already exists in network "ops"/);

    const vms = await t.writer.listVms('ops');
    const names = new Set(vms.map((v) => v.name));
    const macs = new Set(vms.map((v) => v.mac));
    const ids = new Set(vms.map((v) => v.id));
    expect(vms.length).toBe(PROCS * PER_PROC + contested.length);
    expect(names.size).toBe(vms.length);
    expect(macs.size).toBe(vms.length);
    expect(ids.size).toBe(vms.length);
    for (let p = 0; p < PROCS; p++) for (let i = 0; i < PER_PROC; i++) expect(names.has(`op${p}-${i}`)).toBe(true);
    // Every MAC claim points at its VM, and there is no stray claim.
    const claims = (await t.store.kv.range(t.store.keys.mac(''))).entries;
    expect(claims.length).toBe(vms.length);
    const byMac = new Map(vms.map((v) => [v.mac, `${v.network}/${v.name}`]));
    for (const c of claims) expect(byMac.get(c.key.slice(t.store.keys.mac('').length))).toBe(c.value);
    figure('concurrent-vm-add', {
      processes: PROCS, addsPerProcess: PER_PROC, via: ALL_CLI ? 'cli' : 'writer-processes', cliRacersPerName: PROCS, contested: contested.length,
      vms: vms.length, uniqueMacs: macs.size, lost: PROCS * PER_PROC - adds.reduce((n, a) => n + a.ok, 0), wallMs: ms,
    });
  }, 600_000);

  it('vm set racing vm set on different fields never loses a field (CLI processes, and writer processes hammering meta)', async () => {
    await t.writer.addVm({ name: 'target', network: 'ops', meta: { keep: 'me' } });
    const ROUNDS = 10;
    const t0 = Date.now();
    const [cli, hammer] = await Promise.all([
      Promise.all(Array.from({ length: PROCS }, (_, p) => {
        const extra: string[] = [];
        if (p === 0) extra.push('--memory', '777');
        if (p === 1) extra.push('--cpus', '3');
        if (p === 2) extra.push('--host', 'hv-9');
        if (p === 3) extra.push('--ssh-key', 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j op3');
        return operator([['vm', 'set', 'target', ...extra, '--meta', `cli${p}=v${p}`, ...store()]]);
      })),
      Promise.all(Array.from({ length: PROCS }, (_, p) => writerProcess([t.url, t.prefix, 'set', 'ops', 'target', `w${p}-`, String(ROUNDS)]))),
    ]);
    const ms = Date.now() - t0;
    expect(cli.flat().filter((o) => o.code !== 0)).toEqual([]);
    expect(hammer.flatMap((h) => h.failed)).toEqual([]);
    const { vm } = await t.writer.findVm('target', 'ops');
    const want: Record<string, string> = { keep: 'me' };
    for (let p = 0; p < PROCS; p++) {
      want[`cli${p}`] = `v${p}`;
      for (let r = 0; r < ROUNDS; r++) want[`w${p}-${r}`] = String(r);
    }
    expect(vm.meta).toEqual(want);
    expect(vm.resources.memoryMiB).toBe(777);
    expect(vm.resources.cpus).toBe(3);
    expect(vm.host).toBe('hv-9');
    expect(vm.sshKeys).toEqual([expect.stringContaining('op3')]);
    figure('racing-vm-set', { cliProcesses: PROCS, writerProcesses: PROCS, writerRounds: ROUNDS, sets: PROCS * (ROUNDS + 1), metaKeys: Object.keys(vm.meta).length, lostFields: Object.keys(want).length - Object.keys(vm.meta).length, wallMs: ms });
  }, 300_000);
});
