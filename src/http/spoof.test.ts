// The spoof log is bounded per reason and window, and says how many lines it held back.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { SpoofLog } from './spoof.js';
import { HttpMetrics } from './metrics.js';

describe('SpoofLog', () => {
  it('logs at most `burst` lines per reason and window, counts them all, and reports the rest', () => {
    const lines: any[] = [];
    const sink = new Writable({ write(c, _e, done) { lines.push(...String(c).split('\n').filter(Boolean).map((l) => JSON.parse(l))); done(); } });
    let now = 0;
    const metrics = new HttpMetrics();
    const spy: string[] = [];
    metrics.refused = (r: string) => { spy.push(r); };
    const log = new SpoofLog(pino({ level: 'info' }, sink), metrics, 3, 1000, () => now);
    for (let i = 0; i < 50; i++) log.refused('proxy-header', `fd00::${i}`, 'native');
    log.refused('bad-host', 'fd00::99', 'gce');
    expect(spy.length).toBe(51);
    expect(lines.filter((l) => l.reason === 'proxy-header' && l.msg === 'refused spoofed metadata request').length).toBe(3);
    expect(lines.filter((l) => l.reason === 'bad-host').length).toBe(1);
    now = 1000;
    log.refused('proxy-header', 'fd00::1', 'native');
    expect(lines.find((l) => l.suppressed)).toMatchObject({ reason: 'proxy-header', suppressed: 47, level: 40 });
    expect(lines.filter((l) => l.reason === 'proxy-header' && l.msg === 'refused spoofed metadata request').length).toBe(4);
    for (const l of lines) expect(Object.keys(l).sort()).toEqual(expect.arrayContaining(['reason']));
  });
});
