// The neighbour table reader: parsing `ip -j neigh`, and how reads are shared and rate-limited.
// The reader runs a real command (a shell printing a file we rewrite), counting its runs.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IpNeighbourTable, parseIpNeigh } from './neighbours.js';

const dir = mkdtempSync(join(tmpdir(), 'uc-neigh-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('parseIpNeigh', () => {
  it('keeps entries with a link address, canonical, and skips failed or odd ones', () => {
    const t = parseIpNeigh(JSON.stringify([
      { dst: 'FD00:0:0:0::0001', dev: 'br0', lladdr: '52:54:00:AA:BB:CC', state: ['STALE'] },
      { dst: '10.0.0.2', dev: 'br0', lladdr: '52:54:00:aa:bb:cd', state: ['REACHABLE'] },
      { dst: 'fd00::2', dev: 'br0', state: ['FAILED'] },
      { dst: 'fd00::3', dev: 'br0', lladdr: '52:54:00:aa:bb:ce', state: ['INCOMPLETE'] },
      { dst: 'not-an-ip', lladdr: '52:54:00:aa:bb:cf' },
      { dst: 'fd00::4', lladdr: 'zz:zz' },
      null, 7,
    ]));
    expect([...t]).toEqual([['fd00::1', '52:54:00:aa:bb:cc'], ['10.0.0.2', '52:54:00:aa:bb:cd']]);
    expect(parseIpNeigh('garbage').size).toBe(0);
    expect(parseIpNeigh('{}').size).toBe(0);
  });
});

describe('IpNeighbourTable', () => {
  const table = join(dir, 'neigh.json');
  const count = join(dir, 'count');
  /** When each read ran (ms), from the command's own clock. */
  const readTimes = () => readFileSync(count, 'utf8').split('\n').filter(Boolean).map((l) => Number(l) / 1e6);
  const reads = () => readTimes().length;
  const setTable = (rows: object[]) => writeFileSync(table, JSON.stringify(rows));
  const make = () => {
    writeFileSync(count, '');
    return new IpNeighbourTable({ command: ['sh', '-c', `date +%s%N >> ${count}; cat ${table}`], maxAgeMs: 10_000, minIntervalMs: 150 });
  };

  it('answers hits from a recent snapshot without reading again', async () => {
    setTable([{ dst: 'fd00::1', lladdr: '52:54:00:00:00:01' }]);
    const n = make();
    expect(await n.macFor('fd00::1')).toBe('52:54:00:00:00:01');
    expect(await n.macFor('fd00::1')).toBe('52:54:00:00:00:01');
    expect(reads()).toBe(1);
  });

  it('makes a miss wait for a snapshot taken after it asked, so a new neighbour is found', async () => {
    setTable([{ dst: 'fd00::1', lladdr: '52:54:00:00:00:01' }]);
    const n = make();
    expect(await n.macFor('fd00::1')).toBe('52:54:00:00:00:01');
    setTable([{ dst: 'fd00::1', lladdr: '52:54:00:00:00:01' }, { dst: 'fd00::2', lladdr: '52:54:00:00:00:02' }]);
    expect(await n.macFor('fd00::2')).toBe('52:54:00:00:00:02');
    expect(reads()).toBe(2);
  });

  it('shares reads between many misses and spaces them out', async () => {
    setTable([]);
    const n = make();
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => n.macFor(`fd00::${i + 10}`)));
    expect(answers.every((a) => a === undefined)).toBe(true);
    // One read, or two when later askers came after the first had started: never one each.
    expect(reads()).toBeLessThanOrEqual(2);
    for (let i = 0; i < 5; i++) await n.macFor(`fd00::${i + 90}`);
    const times = readTimes();
    // Reads are scheduled 150 ms apart; only the first and last spawn's start-up jitter blurs the span.
    expect(times.length).toBeGreaterThanOrEqual(6);
    expect(times.at(-1)! - times[0]).toBeGreaterThanOrEqual((times.length - 1) * 150 - 100);
  });

  it('survives a command that fails', async () => {
    const n = new IpNeighbourTable({ command: ['sh', '-c', 'exit 3'] });
    expect(await n.macFor('fd00::1')).toBeUndefined();
  });
});
