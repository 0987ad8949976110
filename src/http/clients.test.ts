// Clients no one here wrote, against the server on loopback fed by real etcd: cloud-init's
// OpenStack, EC2, NoCloud and GCE readers (Debian's cloud-init, Python), Google's gcp-metadata
// and AWS's @aws-sdk/ec2-metadata-service (each in its own Node process, as they read env).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { etcdTestStore, ED25519 } from '../../test/support/store.js';
import { silentLogger } from '../log.js';
import { startHttpServer, type HttpServer } from './server.js';
import { nodeScript, python } from './testing/clients.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const t = etcdTestStore();
let server: HttpServer;
let close: () => Promise<void>;
let base: string;
let port: number;

beforeAll(async () => {
  // A /64 holding ::1 and 127/8 holding 127.0.0.1: loopback requests come from this VM.
  await t.writer.addNetwork({ name: 'cli', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'cli.test', metadata6: '::53', metadata4: '127.0.0.53' });
  await t.writer.addUserKey('bob', 'work', ED25519);
  await t.writer.addVm({
    name: 'app', network: 'cli', owner: 'bob', mac: '52:54:00:bb:00:01', addresses: ['::1', '127.0.0.1'],
    userData: '#cloud-config\nruncmd: [echo hi]\n', vendorData: '#cloud-config\npackages: [htop]\n', meta: { tier: 'gold' },
  });
  const f = await t.follow();
  close = f.close;
  server = await startHttpServer({
    registry: f.registry, tokenSecret: Buffer.from('clients-secret'), log: silentLogger(),
    listen: [{ host: '::1', port: 0 }],
  });
  port = server.addresses[0].port;
  base = `http://[::1]:${port}`;
});
afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
});

const CI_PRELUDE = `
import json, sys, logging
logging.disable(logging.CRITICAL)
base = sys.argv[1]
def text(v):
    if isinstance(v, bytes): return v.decode()
    if isinstance(v, dict): return {k: text(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)): return [text(x) for x in v]
    return v
`;

describe('cloud-init readers', () => {
  it('OpenStack: MetadataReader.read_v2 (with its EC2 part read from the same server) and convert_net_json', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit.sources.helpers import openstack, ec2
r = openstack.MetadataReader(base, retries=0, timeout=5)
r._read_ec2_metadata = lambda: ec2.get_instance_metadata(metadata_address=base, retries=0, timeout=5)
res = r.read_v2()
net = openstack.convert_net_json(res['networkdata'], known_macs={'52:54:00:bb:00:01': 'eth0'})
print(json.dumps(text({'md': res['metadata'], 'ud': res['userdata'], 'vd': res.get('vendordata'), 'ec2': res['ec2-metadata'], 'net': net}), default=str))
`, [base]) as Record<string, any>;
    expect(out.md['instance-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(out.md['local-hostname']).toBe('app.cli.test');
    expect(out.md.public_keys).toEqual({ work: ED25519 });
    expect(out.md.meta).toEqual({ tier: 'gold' });
    expect(out.ud).toBe('#cloud-config\nruncmd: [echo hi]\n');
    expect(out.vd).toEqual({ 'cloud-init': '#cloud-config\npackages: [htop]\n' });
    expect(out.ec2['local-hostname']).toBe('app.cli.test');
    expect(out.net.config[0]).toMatchObject({ type: 'physical', name: 'eth0', mac_address: '52:54:00:bb:00:01' });
    expect(out.net.config[0].subnets[0].type).toBe('ipv6_slaac');
    expect(out.net.config).toContainEqual({ type: 'nameserver', address: '::53' });
  });

  it('EC2: get_instance_metadata and get_instance_userdata with an IMDSv2 token', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit.sources.helpers import ec2
from cloudinit import url_helper
tok = url_helper.readurl(base + '/latest/api/token', request_method='PUT', headers={'X-aws-ec2-metadata-token-ttl-seconds': '300'}).contents.decode()
hdr = lambda url: {'X-aws-ec2-metadata-token': tok}
md = ec2.get_instance_metadata(metadata_address=base, api_version='2009-04-04', headers_cb=hdr, retries=0)
ud = ec2.get_instance_userdata(metadata_address=base, headers_cb=hdr, retries=0)
idd = ec2.get_instance_identity(metadata_address=base, headers_cb=hdr, retries=0)
print(json.dumps(text({'md': md, 'ud': ud, 'id': idd})))
`, [base]) as Record<string, any>;
    expect(out.md['instance-id']).toMatch(/^i-[0-9a-f]{17}$/);
    expect(out.md['public-keys']).toEqual({ work: ED25519 });
    expect(out.md.placement['availability-zone']).toBe('clia');
    expect(out.md.placement.region).toBe('cli');
    expect(out.md.network.interfaces.macs['52:54:00:bb:00:01'].ipv6s).toEqual(['::5054:ff:febb:1', '::1']);
    expect(out.md.tags.instance).toEqual({ tier: 'gold' });
    expect(out.ud).toBe('#cloud-config\nruncmd: [echo hi]\n');
    expect(out.id.document.instanceId).toBe(out.md['instance-id']);
  });

  it('NoCloud: util.read_seeded on /nocloud/', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit import util
md, ud, vd = util.read_seeded(base + '/nocloud/', timeout=5, retries=0)
from cloudinit import url_helper
nc = util.load_yaml(url_helper.read_file_or_url(base + '/nocloud/network-config').contents)
print(json.dumps(text({'md': md, 'ud': ud, 'vd': vd, 'nc': nc})))
`, [base]) as Record<string, any>;
    expect(out.md).toMatchObject({ 'local-hostname': 'app.cli.test', 'public-keys': [ED25519] });
    expect(out.ud).toBe('#cloud-config\nruncmd: [echo hi]\n');
    expect(out.vd).toBe('#cloud-config\npackages: [htop]\n');
    expect(out.nc.version).toBe(2);
    expect(out.nc.ethernets.nic0.match.macaddress).toBe('52:54:00:bb:00:01');
    expect(out.nc.ethernets.nic0.nameservers.addresses).toEqual(['::53', '127.0.0.53']);
  });

  it('GCE: DataSourceGCE.read_md', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit.sources import DataSourceGCE as gce, URLParams
r = gce.read_md(address=base + '/computeMetadata/v1/', url_params=URLParams(10, 5, 0, 0), platform_check=False)
print(json.dumps(text(r)))
`, [base]) as Record<string, any>;
    expect(out.success).toBe(true);
    expect(out['meta-data']['local-hostname']).toBe('app.cli.test');
    expect(out['meta-data']['availability-zone']).toBe('clia');
    expect(out['meta-data']['public-keys-data']).toEqual([`bob:${ED25519}`]);
    expect(out['user-data']).toBe('#cloud-config\nruncmd: [echo hi]\n');
  });
});

describe('cloud SDKs', () => {
  it("Google's gcp-metadata reads instance, attributes and project", async () => {
    const out = await nodeScript(`
import * as gcp from 'gcp-metadata';
const out = {
  available: await gcp.isAvailable(),
  hostname: await gcp.instance('hostname'),
  id: await gcp.instance('id'),
  attrs: await gcp.instance({ property: 'attributes/', params: { recursive: 'true' } }),
  nic: await gcp.instance('network-interfaces/0/mac'),
  project: await gcp.project('project-id'),
};
console.log(JSON.stringify(out, (k, v) => typeof v === 'bigint' ? v.toString() : v));
`, { GCE_METADATA_HOST: `[::1]:${port}`, METADATA_SERVER_DETECTION: 'assume-present' }, repo) as Record<string, any>;
    expect(out.available).toBe(true);
    expect(out.hostname).toBe('app.cli.test');
    expect(String(out.id)).toMatch(/^\d+$/);
    expect(out.attrs).toMatchObject({ tier: 'gold', 'ssh-keys': `bob:${ED25519}`, 'user-data': '#cloud-config\nruncmd: [echo hi]\n' });
    expect(out.nic).toBe('52:54:00:bb:00:01');
    expect(out.project).toBe('bob');
  });

  it("AWS's MetadataService fetches with an IMDSv2 token", async () => {
    const out = await nodeScript(`
import { MetadataService } from '@aws-sdk/ec2-metadata-service';
const md = new MetadataService({ endpoint: 'http://[::1]:${port}', retries: 0 });
const token = await md.fetchMetadataToken();
const out = {
  token,
  id: await md.request('/latest/meta-data/instance-id', {}),
  keys: await md.request('/latest/meta-data/public-keys/0/openssh-key', {}),
  doc: JSON.parse(await md.request('/latest/dynamic/instance-identity/document', {})),
};
console.log(JSON.stringify(out));
`, {}, repo) as Record<string, any>;
    expect(out.token).toMatch(/^\d+\.[A-Za-z0-9_-]{43}$/);
    expect(out.id).toMatch(/^i-[0-9a-f]{17}$/);
    expect(out.keys).toBe(ED25519);
    expect(out.doc.instanceId).toBe(out.id);
  });
});
