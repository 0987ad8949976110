// An appliance asked for a network the store does not hold (yet): it starts, says so in the log and
// on /readyz ("waiting", 503), and serves the network the moment an operator creates it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually, ED25519 } from '../../test/support/store.js';
import { freePort } from '../../test/support/ports.js';
import { startBin, type Running } from '../../test/support/daemon.js';

const exec = promisify(execFile);

describe('serve --network for a network not in the store', () => {
  const t = etcdTestStore();
  let daemon: Running | undefined;
  afterAll(async () => {
    await daemon?.stop('SIGKILL');
    await t.close();
  });

  it('waits for it, says so on /readyz and in the log, and serves it once created', async () => {
    await t.writer.addNetwork({ name: 'other', prefix6: '2001:db8:7::/64', domain: 'other.test', metadata6: '2001:db8:7::1' });
    const [dns, http, admin] = [await freePort(), await freePort(), await freePort()];
    daemon = await startBin(['serve', '--store', t.url, '--prefix', t.prefix, '--network', 'late',
      '--dns', `[::1]:${dns}`, '--http', `[::1]:${http}`, '--admin', `[::1]:${admin}`, '--log-level', 'info']);
    const line = daemon.output().split('\n').find((l) => l.includes('not in the store'));
    expect(JSON.parse(line!)).toMatchObject({ level: 40, networks: ['late'] });
    const readyz = async () => {
      const res = await fetch(`http://[::1]:${admin}/readyz`);
      return { status: res.status, body: await res.json() as Record<string, unknown> };
    };
    expect(await readyz()).toMatchObject({ status: 503, body: { status: 'waiting', waitingFor: ['late'] } });

    await t.writer.addNetwork({ name: 'late', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'late.test', metadata6: '::2', metadata4: '127.0.0.2' });
    await t.writer.addUserKey('alice', 'laptop', ED25519);
    await t.writer.addVm({ name: 'self', network: 'late', owner: 'alice', addresses: ['::1', '127.0.0.1'] });
    await eventually(async () => (await readyz()).status === 200, 10_000);
    expect((await readyz()).body).toMatchObject({ status: 'ready', vms: 1 });
    expect(daemon.output()).toMatch(/"network":"late".*"msg":"network appeared; serving it"/);
    const keys = await exec('curl', ['-sS', '--max-time', '5', `http://[::1]:${http}/keys`]);
    expect(keys.stdout.trim()).toBe(ED25519);
    const aaaa = await exec('dig', ['+short', '+tries=1', '+time=2', '@::1', '-p', String(dns), 'metadata.late.test', 'AAAA']);
    expect(aaaa.stdout.trim()).toBe('::2');
  });
});
