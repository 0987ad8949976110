// What a client outside the appliance's networks can reach, in network namespaces: the daemon
// in one (with its defaults: admin on [::1]:9153 only), a client in another holding one address
// inside the served network and one outside every network. The outsider is never recursed for
// nor given authoritative data (even when a DNS listener is reachable from its address) and
// reaches no admin endpoint; the
// insider gets recursion (so the test can fail) and the operator, on the box, gets /readyz.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Netns } from '../e2e/netns.js';
import { openStore } from '../../src/store/open.js';
import { StoreWriter } from '../../src/store/writer.js';
import { BIN } from '../support/daemon.js';
import { figure, within } from './support.js';

const INSIDE_NET = 'fd00:77::';
const OUTSIDE_NET = 'fd99::';

describe('exposure to clients outside the served networks (network namespaces)', () => {
  let app: Netns;
  let guest: Netns;
  let daemon: ChildProcess;
  let upstream: ChildProcess;
  let daemonOut = '';
  let forwarded: string[] = [];

  const dig = async (server: string, from: string, name: string, type = 'A') => {
    const out = await guest.exec('dig', [`@${server}`, '-b', from, '+tries=1', '+time=2', '+noall', '+comments', '+answer', name, type]).catch((e) => String(e.message));
    return { status: /status: (\w+)/.exec(out)?.[1] ?? 'none', answer: out.split('\n').filter((l) => l && !l.startsWith(';')).join('\n') };
  };
  const curl = (ns: Netns, url: string) => ns.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', url])
    .catch((e) => (/Couldn't connect|Connection refused/.test(String(e.message)) ? 'refused' : `failed: ${String(e.message).slice(0, 200)}`));

  beforeAll(async () => {
    const state = join(mkdtempSync(join(tmpdir(), 'uncloud-rel-exposure-')), 'state.json');
    const store = openStore(`file:${state}`, { prefix: '/exp' });
    const writer = new StoreWriter(store.kv, store.keys);
    await writer.addNetwork({ name: 'inside', prefix6: `${INSIDE_NET}/64`, prefix4: '10.77.0.0/24', domain: 'inside.test', metadata6: `${INSIDE_NET}2`, metadata4: '10.77.0.2' });
    await writer.addVm({ name: 'guest', network: 'inside', addresses: [`${INSIDE_NET}10`] });
    await store.kv.close();

    app = await Netns.create('urel-app');
    guest = await Netns.create('urel-gst');
    await app.ip(['link', 'add', 'app0', 'type', 'veth', 'peer', 'name', 'gst0', 'netns', guest.name]);
    for (const [ns, dev, addrs] of [
      [app, 'app0', [`${INSIDE_NET}2/64`, `${OUTSIDE_NET}1/64`, '10.77.0.2/24', '10.99.0.1/24']],
      [guest, 'gst0', [`${INSIDE_NET}10/64`, `${OUTSIDE_NET}10/64`, '10.77.0.10/24', '10.99.0.10/24']],
    ] as const) {
      for (const a of addrs) await ns.ip(['addr', 'add', a, 'dev', dev, ...(a.includes(':') ? ['nodad'] : [])]);
      await ns.ip(['link', 'set', dev, 'up']);
    }

    upstream = app.spawn(process.execPath, [join(import.meta.dirname, 'fixtures/upstream.mjs'), '::1', '5353']);
    let upOut = '';
    upstream.stdout!.on('data', (b) => {
      upOut += b;
      forwarded.push(...String(b).split('\n').filter((l) => l.startsWith('q ')));
    });
    await within(10_000, () => upOut.includes('ready'), 'upstream ready');

    // DNS on the metadata address and (an operator's mistake) on the outside address too; no --admin: the default.
    daemon = app.spawn(process.execPath, [BIN, 'serve', '--store', `file:${state}`, '--prefix', '/exp', '--upstream', '[::1]:5353',
      '--dns', `[${INSIDE_NET}2]:53`, '--dns', `[${OUTSIDE_NET}1]:53`, '--dns', '10.77.0.2:53', '--dns', '10.99.0.1:53',
      '--http', `[${INSIDE_NET}2]:80`, '--http', `[${OUTSIDE_NET}1]:80`, '--log-level', 'info'], { env: { ...process.env, UNCLOUD_METADATA_STORE: '' } });
    daemon.stdout!.on('data', (b) => (daemonOut += b));
    daemon.stderr!.on('data', (b) => (daemonOut += b));
    await within(20_000, () => daemonOut.includes('"msg":"serving"') || daemon.exitCode !== null, 'daemon serving');
    expect(daemon.exitCode, daemonOut).toBeNull();
  }, 60_000);

  afterAll(async () => {
    daemon?.kill('SIGKILL');
    upstream?.kill('SIGKILL');
    await guest?.delete();
    await app?.delete();
  });

  it('recurses for its own networks only: an outside source is refused and nothing is forwarded for it', async () => {
    forwarded = [];
    const outsider = [
      await dig(`${INSIDE_NET}2`, `${OUTSIDE_NET}10`, 'outside-a.example.com'),
      await dig(`${OUTSIDE_NET}1`, `${OUTSIDE_NET}10`, 'outside-b.example.com'),
      await dig('10.99.0.1', '10.99.0.10', 'outside-c.example.com'),
      await dig('10.77.0.2', '10.99.0.10', 'outside-d.example.com'),
    ];
    expect(outsider.map((r) => r.status)).toEqual(['REFUSED', 'REFUSED', 'REFUSED', 'REFUSED']);
    // Authoritative data is for the served networks too (it lists VMs): refused to the outsider, answered inside.
    expect((await dig(`${OUTSIDE_NET}1`, `${OUTSIDE_NET}10`, 'metadata.inside.test', 'AAAA')).status).toBe('REFUSED');
    expect((await dig(`${INSIDE_NET}2`, `${INSIDE_NET}10`, 'metadata.inside.test', 'AAAA')).answer).toContain(`${INSIDE_NET}2`);
    const insider = await dig(`${INSIDE_NET}2`, `${INSIDE_NET}10`, 'inside.example.com');
    const insider4 = await dig('10.77.0.2', '10.77.0.10', 'inside4.example.com');
    expect(insider.status).toBe('NOERROR');
    expect(insider.answer).toContain('192.0.2.1');
    expect(insider4.answer).toContain('192.0.2.1');
    expect(forwarded.filter((q) => q.includes('outside'))).toEqual([]);
    expect(forwarded.filter((q) => q.includes('inside'))).toHaveLength(2);
    figure('no-open-recursion', { outsideQueries: outsider.length, outsideRefused: outsider.filter((r) => r.status === 'REFUSED').length, forwardedForOutside: 0, insideForwarded: 2 });
  }, 60_000);

  it('the admin listener is on the appliance\'s loopback only: no guest or outside address reaches it', async () => {
    const tries = {
      [`[${INSIDE_NET}2]:9153`]: await curl(guest, `http://[${INSIDE_NET}2]:9153/readyz`),
      [`[${OUTSIDE_NET}1]:9153`]: await curl(guest, `http://[${OUTSIDE_NET}1]:9153/readyz`),
      '10.77.0.2:9153': await curl(guest, 'http://10.77.0.2:9153/readyz'),
      'metrics on the metadata port': await curl(guest, `http://[${INSIDE_NET}2]/metrics`),
      'readyz on the metadata port': await curl(guest, `http://[${INSIDE_NET}2]/readyz`),
    };
    for (const [where, r] of Object.entries(tries)) expect(r, where).toMatch(where.includes('port') ? /^4\d\d$/ : /^refused$/);
    expect(await curl(app, 'http://[::1]:9153/readyz')).toBe('200');
    // And the guest's own metadata works from its own address, not from the outside one.
    expect(await guest.exec('curl', ['-sS', '--max-time', '3', '--interface', `${INSIDE_NET}10`, `http://[${INSIDE_NET}2]/instance`])).toContain('"name": "guest"');
    expect(await guest.exec('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', '--interface', `${OUTSIDE_NET}10`, `http://[${OUTSIDE_NET}1]/instance`])).toBe('404');
    figure('admin-not-exposed', tries);
  }, 60_000);
});
