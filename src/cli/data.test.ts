// The CLI's data flags as an operator uses them, on etcd and on a file store: placement per
// network, --require-token/--no-require-token with its warning, user-data and vendor-data files
// as bytes. Refusals are one line on stderr, a non-zero exit and no write.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { etcdEndpoint, uniquePrefix } from '../../test/support/store.js';
import { cli } from './testing/run.js';
import { cliOnStore } from './testing/expect.js';

// Each test runs a dozen CLI processes; on a loaded machine one can take seconds.
vi.setConfig({ testTimeout: 180_000 });

const dir = mkdtempSync(join(tmpdir(), 'uncloud-cli-data-'));
const file = (name: string, bytes: Buffer) => {
  writeFileSync(join(dir, name), bytes);
  return join(dir, name);
};
const GZ = gzipSync('#cloud-config\nruncmd: [[echo, gz]]\n');
const TEXT = Buffer.from('\ufeff#cloud-config\r\n# café, NUL \u0000 and all\r\n');
const gzFile = file('ud.gz', GZ);
const textFile = file('vd.txt', TEXT);
const atLimit = file('limit.bin', Buffer.concat([Buffer.from([0xff]), randomBytes(1024 * 1024 - 1)]));
const overLimit = file('over.bin', Buffer.alloc(1024 * 1024 + 1, 0x41));

for (const kind of ['etcd', 'file'] as const) {
  describe(`CLI data flags on ${kind}`, () => {
    const prefix = uniquePrefix();
    let url = '';
    let base: string[] = [];
    const { ok, refused } = cliOnStore(() => ({ url, prefix }));
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

      it('network set replaces the placement as a whole, and changes nothing else', async () => {
        const before = await showJson(['network', 'show', 'east']);
        expect((await ok(['network', 'set', 'east', '--zone', 'eu-west-1c'])).stdout).toBe('network east updated: region eu-west-1, zone eu-west-1c\n');
        expect(await showJson(['network', 'show', 'east'])).toEqual({ ...before, region: undefined, zone: 'eu-west-1c' });
        // A region alone drops the zone of the old region.
        await ok(['network', 'set', 'east', '--region', 'eu-north-1']);
        expect(await showJson(['network', 'show', 'east'])).toEqual({ ...before, region: 'eu-north-1' });
        // Neither: back to the defaults.
        await ok(['network', 'set', 'east']);
        expect(await showJson(['network', 'show', 'east'])).toEqual({ ...before, region: undefined });
        await ok(['network', 'set', 'east', '--region', 'eu-west-1']);
        expect(await showJson(['network', 'show', 'east'])).toEqual(before);
        await refused(['network', 'set', 'east', '--region', 'eu-west-1', '--zone', 'eu-west-2a'], /zone: "eu-west-2a" must be the region "eu-west-1"/);
        await refused(['network', 'set', 'nope', '--region', 'r'], /network "nope" does not exist/);
      });

      it('refuses a zone that is not its region plus one letter, and malformed regions', async () => {
        await refused([...net('n1', 0xf1), '--region', 'eu-west-1', '--zone', 'eu-west-2a'], /zone: "eu-west-2a" must be the region "eu-west-1" followed by one letter/);
        await refused([...net('n1', 0xf1), '--zone', 'eu-west-1'], /zone: "eu-west-1" must be a region followed by one letter/);
        await refused([...net('n1', 0xf1), '--region', 'EU_West'], /region: "EU_West" must be lower-case/);
        await refused([...net('n1', 0xf1), '--region', 'lab', '--zone', 'labaa'], /zone: "labaa" must be the region "lab"/);
      });
    });

    describe('user-data and vendor-data files', () => {
      it('are read as bytes and stored losslessly: UTF-8 as text, anything else as base64', async () => {
        await ok(['vm', 'add', 'bin', '--network', 'lab', '--user-data', gzFile, '--vendor-data', textFile]);
        const rec = await showJson(['vm', 'show', 'bin']);
        expect(Buffer.from(rec.userDataBase64, 'base64').equals(GZ)).toBe(true);
        expect(rec).not.toHaveProperty('userData');
        expect(Buffer.from(rec.vendorData, 'utf8').equals(TEXT)).toBe(true); // BOM, CRLF and NUL kept
        expect(rec).not.toHaveProperty('vendorDataBase64');
      });

      it('vm show says "binary, N bytes" or "text, N bytes" and never prints them', async () => {
        const out = (await ok(['vm', 'show', 'bin'])).stdout;
        expect(out).toMatch(new RegExp(`user-data\\s+binary, ${GZ.length} bytes\n`));
        expect(out).toMatch(new RegExp(`vendor-data\\s+text, ${TEXT.length} bytes\n`));
        expect(out).not.toContain('cloud-config');
        expect(Buffer.from(out).includes(GZ.subarray(0, 3))).toBe(false);
      });

      it('vm set swaps the stored form with the data, and leaves data it does not name alone', async () => {
        await ok(['vm', 'set', 'bin', '--user-data', textFile, '--vendor-data', gzFile]);
        let rec = await showJson(['vm', 'show', 'bin']);
        expect(Buffer.from(rec.userData, 'utf8').equals(TEXT)).toBe(true);
        expect(rec).not.toHaveProperty('userDataBase64');
        expect(Buffer.from(rec.vendorDataBase64, 'base64').equals(GZ)).toBe(true);
        expect(rec).not.toHaveProperty('vendorData');
        await ok(['vm', 'set', 'bin', '--memory', '128']);
        rec = await showJson(['vm', 'show', 'bin']);
        expect(Buffer.from(rec.vendorDataBase64, 'base64').equals(GZ)).toBe(true);
        expect(rec.userData).toBe(TEXT.toString('utf8'));
      });

      it('takes exactly 1 MiB and refuses a byte more, and a file that never ends, without reading it whole', async () => {
        await ok(['vm', 'set', 'bin', '--user-data', atLimit]);
        expect(Buffer.from((await showJson(['vm', 'show', 'bin'])).userDataBase64, 'base64').length).toBe(1024 * 1024);
        await refused(['vm', 'set', 'bin', '--user-data', overLimit], /^error: user-data file .*over\.bin is larger than 1048576 bytes$/m);
        await refused(['vm', 'add', 'big', '--network', 'lab', '--vendor-data', '/dev/zero'], /^error: vendor-data file \/dev\/zero is larger than 1048576 bytes$/m);
        await refused(['vm', 'set', 'bin', '--user-data', join(dir, 'missing')], /^error: cannot read .*missing: ENOENT$/m);
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
