// Placement served the same in every flavour, read by the clients that use it: botocore's own
// region fetcher (it takes the zone minus its last character as the region), cloud-init's EC2,
// OpenStack, NoCloud and GCE readers, and the raw answers. One network names its region; the
// other takes the defaults (region = network name, zone = region + "a").
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore, eventually } from '../../../test/support/store.js';
import { silentLogger } from '../../log.js';
import { startHttpServer, type HttpServer } from '../server.js';
import { httpGet, python } from '../testing/clients.js';

const t = etcdTestStore();
let server: HttpServer;
let close: () => Promise<void>;
// The VM at ::1 is in "east" (region eu-west-1, zone defaulted); the one at 127.0.0.1 in "plain".
const bases: Record<'east' | 'plain', string> = { east: '', plain: '' };
const expected = { east: { region: 'eu-west-1', zone: 'eu-west-1a' }, plain: { region: 'plain', zone: 'plaina' } };

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'east', prefix6: '::/64', domain: 'east.test', metadata6: '::53', region: 'eu-west-1' });
  await t.writer.addNetwork({ name: 'plain', prefix6: 'fd00:dd::/64', prefix4: '127.0.0.0/8', domain: 'plain.test', metadata6: 'fd00:dd::53' });
  await t.writer.addVm({ name: 'e1', network: 'east', mac: '52:54:00:ee:00:01', addresses: ['::1'] });
  await t.writer.addVm({ name: 'p1', network: 'plain', mac: '52:54:00:ee:00:02', addresses: ['127.0.0.1'] });
  const f = await t.follow();
  close = f.close;
  server = await startHttpServer({
    registry: f.registry, tokenSecret: Buffer.from('placement-secret'), log: silentLogger(),
    listen: [{ host: '::1', port: 0 }, { host: '127.0.0.1', port: 0 }],
  });
  bases.east = `http://[::1]:${server.addresses[0].port}`;
  bases.plain = `http://127.0.0.1:${server.addresses[1].port}`;
});
afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
});

const get = async (base: string, path: string, headers: Record<string, string> = {}) => {
  const u = new URL(base);
  const r = await httpGet(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port), path, { headers });
  expect(r.status, path).toBe(200);
  return r.body;
};

describe.each(['east', 'plain'] as const)('placement of network %s', (net) => {
  const want = expected[net];

  it("botocore's InstanceMetadataRegionFetcher derives the region EC2 serves", async () => {
    // botocore (Debian's python3-botocore) as the AWS CLI and boto3 run it: IMDSv2 token, then
    // latest/meta-data/placement/availability-zone/ (with its trailing slash), region = zone[:-1].
    const out = await python(`
import json, sys, logging
logging.disable(logging.CRITICAL)
from botocore.utils import InstanceMetadataRegionFetcher
f = InstanceMetadataRegionFetcher(timeout=5, num_attempts=1, base_url=sys.argv[1] + '/')
print(json.dumps({'region': f.retrieve_region()}))
`, [bases[net]]) as { region: string };
    expect(out.region).toBe(want.region);
    expect(await get(bases[net], '/latest/meta-data/placement/region')).toBe(out.region);
    expect(await get(bases[net], '/latest/meta-data/placement/availability-zone')).toBe(want.zone);
    const doc = JSON.parse(await get(bases[net], '/latest/dynamic/instance-identity/document'));
    expect({ region: doc.region, zone: doc.availabilityZone }).toEqual(want);
  });

  it('cloud-init reads the same zone from EC2, OpenStack, NoCloud and GCE', async () => {
    const out = await python(`
import json, sys, logging
logging.disable(logging.CRITICAL)
from cloudinit.sources.helpers import openstack, ec2
from cloudinit.sources import DataSourceGCE as gce, URLParams
from cloudinit import util
base = sys.argv[1]
e = ec2.get_instance_metadata(metadata_address=base, retries=0, timeout=5)
r = openstack.MetadataReader(base, retries=0, timeout=5)
r._read_ec2_metadata = lambda: {}
o = r.read_v2()
n, _, _ = util.read_seeded(base + '/nocloud/', timeout=5, retries=0)
g = gce.read_md(address=base + '/computeMetadata/v1/', url_params=URLParams(10, 5, 0, 0), platform_check=False)
print(json.dumps({'ec2': e['placement']['availability-zone'], 'ec2region': e['placement']['region'],
  'openstack': o['metadata']['availability_zone'], 'nocloud': n['availability-zone'], 'gce': g['meta-data']['availability-zone']}))
`, [bases[net]]) as Record<string, string>;
    expect(out).toEqual({ ec2: want.zone, ec2region: want.region, openstack: want.zone, nocloud: want.zone, gce: want.zone });
  });

  it('GCE names the zone as GCE does, the native document carries both', async () => {
    expect(await get(bases[net], '/computeMetadata/v1/instance/zone', { 'Metadata-Flavor': 'Google' })).toBe(`projects/0/zones/${want.zone}`);
    expect(JSON.parse(await get(bases[net], '/instance')).placement).toEqual(want);
  });
});

describe('a placement change', () => {
  it('reaches every flavour without a restart', async () => {
    await t.writer.setNetworkPlacement('plain', { zone: 'lab-2b' });
    await eventually(async () => (await get(bases.plain, '/latest/meta-data/placement/availability-zone')) === 'lab-2b');
    expect(await get(bases.plain, '/latest/meta-data/placement/region')).toBe('lab-2');
    expect(JSON.parse(await get(bases.plain, '/openstack/latest/meta_data.json')).availability_zone).toBe('lab-2b');
    expect(await get(bases.plain, '/computeMetadata/v1/instance/zone', { 'Metadata-Flavor': 'Google' })).toBe('projects/0/zones/lab-2b');
    await t.writer.setNetworkPlacement('plain', {});
    await eventually(async () => (await get(bases.plain, '/latest/meta-data/placement/availability-zone')) === 'plaina');
  });
});
