// The CLI's data flags as an operator uses them, on etcd and on a file store: placement per
// network, --require-token/--no-require-token with its warning. Refusals are one line on stderr,
// a non-zero exit and no write.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { etcdEndpoint, uniquePrefix } from '../../test/support/store.js';
import { openStore } from '../store/open.js';
import { cli } from './testing/run.js';

const dir = mkdtempSync(join(tmpdir(), 'uncloud-cli-data-'));

for (const kind of ['etcd', 'file'] as const) {
  describe(`CLI data flags on ${kind}`, () => {
    const prefix = uniquePrefix();
    let url = '';
    let base: string[] = [];
    const snapshot = async () => {
      const s = openStore(url, { prefix });
      try {
        return JSON.stringify((await s.kv.range(`${prefix}/`)).entries.map((e) => [e.key, e.modRevision]));
      } finally {
        await s.kv.close();
      }
    };
    const ok = async (args: string[]) => {
      const r = await cli([...args, ...base]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return r;
    };
    const refused = async (args: string[], message: RegExp) => {
      const before = await snapshot();
      const r = await cli([...args, ...base]);
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(await snapshot()).toBe(before);
    };
    const net = (name: string, n: number) => ['network', 'add', name, '--prefix6', `2001:db8:${n}::/64`, '--domain', `${name}.example`, '--metadata6', `2001:db8:${n}::1`];
    const showJson = async (what: string[]) => JSON.parse((await ok([...what, '--json'])).stdout);

    beforeAll(() => {
      url = kind === 'etcd' ? `etcd://${etcdEndpoint()}` : `file:${join(dir, `${kind}.json`)}`;
      base = ['--store', url, '--prefix', prefix];
    });

    describe('placement', () => {
      it('network add takes --region and --zone; show prints them, and the defaults as defaults', async () => {
        await ok([...net('east', 0xe1), '--region', 'eu-west-1']);
        await ok([...net('west', 0xe2), '--zone', 'us-west-2c']);
        await ok([...net('both', 0xe3), '--region', 'r9', '--zone', 'r9b']);
        await ok(net('lab', 0xe4));
        expect(await showJson(['network', 'show', 'east'])).toMatchObject({ region: 'eu-west-1' });
        expect(await showJson(['network', 'show', 'west'])).toMatchObject({ zone: 'us-west-2c' });
        expect(await showJson(['network', 'show', 'lab'])).not.toHaveProperty('region');
        const table = async (name: string) => (await ok(['network', 'show', name])).stdout;
        expect(await table('east')).toMatch(/region\s+eu-west-1\n.*zone\s+eu-west-1a \(default\)/s);
        expect(await table('west')).toMatch(/region\s+us-west-2\n.*zone\s+us-west-2c\n/s);
        expect(await table('both')).toMatch(/region\s+r9\n.*zone\s+r9b\n/s);
        expect(await table('lab')).toMatch(/region\s+lab \(default\)\n.*zone\s+laba \(default\)/s);
      });

      it('refuses a zone that is not its region plus one letter, and malformed regions', async () => {
        await refused([...net('n1', 0xf1), '--region', 'eu-west-1', '--zone', 'eu-west-2a'], /zone: "eu-west-2a" must be the region "eu-west-1" followed by one letter/);
        await refused([...net('n1', 0xf1), '--zone', 'eu-west-1'], /zone: "eu-west-1" must be a region followed by one letter/);
        await refused([...net('n1', 0xf1), '--region', 'EU_West'], /region: "EU_West" must be lower-case/);
        await refused([...net('n1', 0xf1), '--region', 'lab', '--zone', 'labaa'], /zone: "labaa" must be the region "lab"/);
      });
    });

    describe('--require-token', () => {
      const WARNING = /^warning: --require-token: cloud-init's Ec2 datasource sends no IMDSv2 token off AWS .*OpenStack or NoCloud.*X-aws-ec2-metadata-token/;
      it('vm add and vm set --require-token write it and warn on one stderr line; --no-require-token clears it silently', async () => {
        const add = await cli(['vm', 'add', 'tok', '--network', 'lab', '--require-token', ...base]);
        expect(add.code).toBe(0);
        expect(add.stderr).toMatch(WARNING);
        expect(add.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect((await showJson(['vm', 'show', 'tok'])).requireToken).toBe(true);

        await ok(['vm', 'set', 'tok', '--no-require-token']);
        expect((await showJson(['vm', 'show', 'tok'])).requireToken).toBe(false);
        await ok(['vm', 'set', 'tok', '--memory', '256']);
        expect((await showJson(['vm', 'show', 'tok'])).requireToken).toBe(false);

        const set = await cli(['vm', 'set', 'tok', '--require-token', ...base]);
        expect(set.code).toBe(0);
        expect(set.stderr).toMatch(WARNING);
        expect(set.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect((await showJson(['vm', 'show', 'tok'])).requireToken).toBe(true);
        // Leaving it out keeps it.
        await ok(['vm', 'set', 'tok', '--cpus', '2']);
        expect((await showJson(['vm', 'show', 'tok'])).requireToken).toBe(true);
      });

      it('a refused write prints only its error, not the warning', async () => {
        await refused(['vm', 'add', 'tok', '--network', 'lab', '--require-token'], /^error: .*already exists/);
        await refused(['vm', 'set', 'ghost', '--require-token'], /^error: VM "ghost" does not exist/);
      });
    });
  });
}
