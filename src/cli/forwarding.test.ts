// Where a network's guests may be routed (`forwardTo`), as an operator sets it: on `network add`
// and `network set`, shown by `network show`, refused in one line with no write when malformed.
// What the agent's rules make of it: src/agent/policy.test.ts and src/agent/nft.test.ts.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { etcdEndpoint, uniquePrefix } from '../../test/support/store.js';
import { cliOnStore } from './testing/expect.js';

vi.setConfig({ testTimeout: 120_000 });

describe('network forwarding on the CLI', () => {
  const prefix = uniquePrefix();
  const url = `etcd://${etcdEndpoint()}`;
  const base = ['--store', url, '--prefix', prefix];
  const { ok, refused } = cliOnStore(() => ({ url, prefix }));
  const forwardTo = async (name: string) => JSON.parse((await ok(['network', 'show', name, '--json'])).stdout).forwardTo;

  beforeAll(async () => {
    await ok(['network', 'add', 'db', '--prefix6', '2001:db8:d1::/64', '--domain', 'db.example', '--metadata6', '2001:db8:d1::1']);
  });

  it('is nowhere by default; network add and network set name networks or "*"; --no-forward clears it', async () => {
    await ok(['network', 'add', 'lab', '--prefix6', '2001:db8:d2::/64', '--domain', 'lab.example', '--metadata6', '2001:db8:d2::1']);
    expect(await forwardTo('lab')).toBeUndefined();
    expect((await ok(['network', 'show', 'lab'])).stdout).toMatch(/forward-to\s+\(nowhere\)/);
    await ok(['network', 'add', 'web', '--prefix6', '2001:db8:d3::/64', '--domain', 'web.example', '--metadata6', '2001:db8:d3::1', '--forward-to', 'db']);
    expect(await forwardTo('web')).toEqual(['db']);

    expect((await ok(['network', 'set', 'lab', '--forward-to', 'db', '--forward-to', '*'])).stdout).toBe('network lab updated: forward to db *\n');
    expect(await forwardTo('lab')).toEqual(['db', '*']);
    expect((await ok(['network', 'show', 'lab'])).stdout).toMatch(/forward-to\s+db \*/);
    await ok(['network', 'set', 'lab', '--no-forward']);
    expect(await forwardTo('lab')).toBeUndefined();
  });

  it('refuses malformed names and mixed flags in one line, writing nothing', async () => {
    await refused(['network', 'set', 'db', '--forward-to', 'Not_A_Label'], /forwardTo/);
    await refused(['network', 'set', 'db', '--forward-to', 'lab', '--zone', 'dba'], /not both/);
    await refused(['network', 'set', 'db', '--forward-to', 'lab', '--no-forward'], /not both/);
    await refused(['network', 'set', 'nope', '--forward-to', 'lab'], /network "nope" does not exist/);
  });
});
