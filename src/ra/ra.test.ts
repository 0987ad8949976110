// The RA configs are real: radvd accepts its file, and a host in a network namespace behind a
// veth learns the prefix, RDNSS and DNSSL from radvd (read with rdisc6). dnsmasq's config passes
// dnsmasq's own --test.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderDnsmasq, renderRadvd } from './render.js';
import { NetworkSchema } from '../model/schema.js';

const network = NetworkSchema.parse({ v: 1, name: 'ratest', prefix6: 'fd00:aa::/64', domain: 'ra.example', metadata6: 'fd00:aa::53' });
const dir = mkdtempSync(join(tmpdir(), 'uncloud-ra-'));
const ns = `ura${process.pid % 10000}`;
let radvd: ChildProcess | undefined;

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

afterAll(() => {
  radvd?.kill('SIGKILL');
  try { sh('ip', ['netns', 'del', `${ns}r`]); } catch { /* gone */ }
  try { sh('ip', ['netns', 'del', `${ns}g`]); } catch { /* gone */ }
});

describe('ra-config', () => {
  it('renders a radvd config that radvd accepts', () => {
    const path = join(dir, 'radvd.conf');
    writeFileSync(path, renderRadvd(network, 'eth0'));
    expect(() => sh('radvd', ['--configtest', '-C', path])).not.toThrow();
  });

  it('renders a dnsmasq config that dnsmasq accepts', () => {
    const path = join(dir, 'dnsmasq.conf');
    writeFileSync(path, renderDnsmasq(network, 'eth0'));
    expect(sh('dnsmasq', ['--test', `--conf-file=${path}`])).toBe('');
  });

  it('announces prefix, RDNSS and DNSSL to a host on the link', async () => {
    // router namespace <-veth-> guest namespace
    sh('ip', ['netns', 'add', `${ns}r`]);
    sh('ip', ['netns', 'add', `${ns}g`]);
    sh('ip', ['link', 'add', 'rv0', 'netns', `${ns}r`, 'type', 'veth', 'peer', 'name', 'gv0', 'netns', `${ns}g`]);
    for (const [n, dev] of [[`${ns}r`, 'rv0'], [`${ns}g`, 'gv0']]) {
      sh('ip', ['netns', 'exec', n, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=' + (dev === 'rv0' ? '1' : '0')]);
      sh('ip', ['-n', n, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', n, 'link', 'set', dev, 'up']);
    }
    sh('ip', ['-n', `${ns}r`, 'addr', 'add', 'fd00:aa::53/64', 'dev', 'rv0', 'nodad']);
    const conf = join(dir, 'radvd-live.conf');
    writeFileSync(conf, renderRadvd(network, 'rv0'));
    radvd = spawn('ip', ['netns', 'exec', `${ns}r`, 'radvd', '-n', '-C', conf, '-p', join(dir, 'radvd.pid'), '-m', 'stderr'], { stdio: 'ignore' });
    // wait for the link-local addresses to leave DAD, then solicit
    let out = '';
    for (let i = 0; i < 40 && !/Recursive DNS server/.test(out); i++) {
      await new Promise((r) => setTimeout(r, 250));
      try { out = sh('ip', ['netns', 'exec', `${ns}g`, 'rdisc6', '-1', '-w', '500', 'gv0']); } catch { /* not yet */ }
    }
    expect(out).toMatch(/Prefix\s+:\s+fd00:aa::\/64/);
    expect(out).toMatch(/Recursive DNS server\s+:\s+fd00:aa::53/);
    expect(out).toMatch(/DNS search list\s+:\s+ra\.example/);
  }, 30_000);
});
