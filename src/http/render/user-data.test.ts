// User-data and vendor-data are bytes, served byte-exact by every flavour: a gzipped cloud-config
// and MIME multipart user-data (CRLF lines, UTF-8), plain and gzipped, written by the
// store writer, read back over HTTP as raw bytes on the fast path and the app, and by cloud-init's
// own readers (Debian's cloud-init, Python): the exact bytes each time.
import { gzipSync } from 'node:zlib';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdTestStore } from '../../../test/support/store.js';
import { silentLogger } from '../../log.js';
import { startHttpServer, type HttpServer } from '../server.js';
import { python } from '../testing/clients.js';

const GZIP_CLOUD_CONFIG = gzipSync('#cloud-config\nruncmd:\n  - [echo, gzipped]\n');
const MIME_TEXT = Buffer.from([
  'Content-Type: multipart/mixed; boundary="===============2678395050260980330=="',
  'MIME-Version: 1.0',
  '',
  '--===============2678395050260980330==',
  'Content-Type: text/cloud-config; charset="utf-8"',
  'MIME-Version: 1.0',
  'Content-Transfer-Encoding: 8bit',
  'Content-Disposition: attachment; filename="config.yaml"',
  '',
  '#cloud-config',
  'write_files: [{path: /etc/motd, content: "café\\n"}]',
  '--===============2678395050260980330==',
  'Content-Type: text/x-shellscript; charset="us-ascii"',
  'MIME-Version: 1.0',
  '',
  '#!/bin/sh',
  'echo mime > /run/mime',
  '',
  '--===============2678395050260980330==--',
  '',
].join('\r\n'));
// What `cloud-init devel make-mime ... | gzip` gives: a compressed multipart message.
const GZIP_MIME = gzipSync(MIME_TEXT);

// Two VMs: "gz" at ::1 (gzip user-data, gzipped multipart vendor-data), "mime" at 127.0.0.1
// (text multipart user-data, gzip vendor-data).
const VMS = {
  gz: { addr: '::1', userData: GZIP_CLOUD_CONFIG, vendorData: GZIP_MIME },
  mime: { addr: '127.0.0.1', userData: MIME_TEXT, vendorData: GZIP_CLOUD_CONFIG },
} as const;
type VmName = keyof typeof VMS;

const t = etcdTestStore();
let server: HttpServer;
let close: () => Promise<void>;
const ports: Record<VmName, number> = { gz: 0, mime: 0 };
const base = (vm: VmName) => (VMS[vm].addr === '::1' ? `http://[::1]:${ports[vm]}` : `http://127.0.0.1:${ports[vm]}`);

beforeAll(async () => {
  await t.writer.addNetwork({ name: 'bytes', prefix6: '::/64', prefix4: '127.0.0.0/8', domain: 'bytes.test', metadata6: '::53', metadata4: '127.0.0.53' });
  await t.writer.addVm({ name: 'gz', network: 'bytes', mac: '52:54:00:b7:00:01', addresses: ['::1'], userData: VMS.gz.userData, vendorData: VMS.gz.vendorData });
  await t.writer.addVm({ name: 'mime', network: 'bytes', mac: '52:54:00:b7:00:02', addresses: ['127.0.0.1'], userData: VMS.mime.userData, vendorData: VMS.mime.vendorData });
  const f = await t.follow();
  close = f.close;
  server = await startHttpServer({
    registry: f.registry, tokenSecret: Buffer.from('bytes-secret'), log: silentLogger(),
    listen: [{ host: '::1', port: 0 }, { host: '127.0.0.1', port: 0 }],
  });
  ports.gz = server.addresses[0].port;
  ports.mime = server.addresses[1].port;
});
afterAll(async () => {
  await server?.close();
  await close?.();
  await t.close();
});

interface Raw { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }

function raw(vm: VmName, path: string, method = 'GET', headers: Record<string, string> = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ host: VMS[vm].addr, port: ports[vm], path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A valid IMDSv2 token: requests carrying one go through the app instead of the fast path. */
async function token(vm: VmName): Promise<string> {
  const r = await raw(vm, '/latest/api/token', 'PUT', { 'X-aws-ec2-metadata-token-ttl-seconds': '60' });
  expect(r.status).toBe(200);
  return r.body.toString();
}

const FILES: [string, 'userData' | 'vendorData'][] = [
  ['/openstack/latest/user_data', 'userData'],
  ['/openstack/2012-08-10/user_data', 'userData'],
  ['/latest/user-data', 'userData'],
  ['/2009-04-04/user-data', 'userData'],
  ['/nocloud/user-data', 'userData'],
  ['/nocloud/vendor-data', 'vendorData'],
  ['/user-data', 'userData'],
  ['/vendor-data', 'vendorData'],
];

describe.each(['gz', 'mime'] as const)('VM %s', (vm) => {
  it('the store holds UTF-8 as text and anything else as base64, never both', async () => {
    const { vm: rec } = await t.writer.findVm(vm, 'bytes');
    expect(rec.userData === undefined).toBe(vm === 'gz');
    expect(rec.userDataBase64 === undefined).toBe(vm === 'mime');
    expect(rec.vendorDataBase64).toBeDefined(); // gzip, of a cloud-config or of a multipart message
  });

  it.each(FILES)('%s is the exact bytes as application/octet-stream, on the fast path and through the app', async (path, kind) => {
    const want = VMS[vm][kind];
    const fast = await raw(vm, path);
    expect(fast.status).toBe(200);
    expect(fast.headers['content-type']).toBe('application/octet-stream');
    expect(fast.headers['content-length']).toBe(String(want.length));
    expect(fast.body.equals(want), `${path}: ${fast.body.length} bytes vs ${want.length}`).toBe(true);
    const slow = await raw(vm, path, 'GET', { 'X-aws-ec2-metadata-token': await token(vm) });
    expect(slow.status).toBe(200);
    expect(slow.body.equals(want)).toBe(true);
    expect(slow.headers.etag).toBe(fast.headers.etag);
  });

  it('GCE serves the user-data attribute as text, or (bytes that are not UTF-8) as base64 with user-data-encoding', async () => {
    const g = { 'Metadata-Flavor': 'Google' };
    const attr = await raw(vm, '/computeMetadata/v1/instance/attributes/user-data', 'GET', g);
    const enc = await raw(vm, '/computeMetadata/v1/instance/attributes/user-data-encoding', 'GET', g);
    if (vm === 'gz') {
      expect(Buffer.from(attr.body.toString(), 'base64').equals(VMS.gz.userData)).toBe(true);
      expect(enc.body.toString()).toBe('base64');
    } else {
      expect(attr.body.equals(VMS.mime.userData)).toBe(true);
      expect(enc.status).toBe(404);
    }
  });
});

const CI_PRELUDE = `
import base64, json, sys, logging
logging.disable(logging.CRITICAL)
base = sys.argv[1]
def b64(v):
    if v is None: return None
    return base64.b64encode(v if isinstance(v, bytes) else v.encode('utf-8', 'surrogateescape')).decode()
`;
const b64 = (b: Buffer) => b.toString('base64');

describe.each(['gz', 'mime'] as const)("cloud-init's readers get the exact bytes of VM %s", (vm) => {
  it('OpenStack MetadataReader.read_v2: user_data; vendor_data.json decodes to the same bytes', async () => {
    const out = await python(`${CI_PRELUDE}
import tempfile
from cloudinit.sources.helpers import openstack
from cloudinit import sources, user_data, helpers, util
r = openstack.MetadataReader(base, retries=0, timeout=5)
r._read_ec2_metadata = lambda: {}
res = r.read_v2()
vd = sources.convert_vendordata(res['vendordata'])
# What cloud-init's user-data processor makes of the vendor-data it was given: the payloads of
# the parts it keeps, after its own MIME decoding and gunzip.
def parts(blob):
    p = user_data.UserDataProcessor(helpers.Paths({'cloud_dir': tempfile.mkdtemp()}))
    return [b64(util.fully_decoded_payload(m)) for m in p.process(blob).walk() if not m.is_multipart()]
print(json.dumps({'ud': b64(res['userdata']), 'vd_parts': parts(vd), 'raw_parts': parts(base64.b64decode(sys.argv[2]))}))
`, [base(vm), b64(VMS[vm].vendorData)]) as Record<string, any>;
    expect(out.ud).toBe(b64(VMS[vm].userData));
    expect(out.vd_parts.length).toBeGreaterThan(0);
    expect(out.vd_parts).toEqual(out.raw_parts);
  });

  it('EC2 get_instance_userdata (IMDSv2 token, as on AWS)', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit.sources.helpers import ec2
from cloudinit import url_helper
tok = url_helper.readurl(base + '/latest/api/token', request_method='PUT', headers={'X-aws-ec2-metadata-token-ttl-seconds': '60'}).contents.decode()
ud = ec2.get_instance_userdata(metadata_address=base, headers_cb=lambda url: {'X-aws-ec2-metadata-token': tok}, retries=0)
ud1 = ec2.get_instance_userdata(metadata_address=base, api_version='2009-04-04', retries=0)
print(json.dumps({'ud': b64(ud), 'ud1': b64(ud1)}))
`, [base(vm)]) as Record<string, string>;
    expect(out).toEqual({ ud: b64(VMS[vm].userData), ud1: b64(VMS[vm].userData) });
  });

  it('NoCloud util.read_seeded: user-data and vendor-data', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit import util
md, ud, vd = util.read_seeded(base + '/nocloud/', timeout=5, retries=0)
print(json.dumps({'ud': b64(ud), 'vd': b64(vd)}))
`, [base(vm)]) as Record<string, string>;
    expect(out).toEqual({ ud: b64(VMS[vm].userData), vd: b64(VMS[vm].vendorData) });
  });

  it('GCE DataSourceGCE.read_md', async () => {
    const out = await python(`${CI_PRELUDE}
from cloudinit.sources import DataSourceGCE as gce, URLParams
r = gce.read_md(address=base + '/computeMetadata/v1/', url_params=URLParams(10, 5, 0, 0), platform_check=False)
print(json.dumps({'success': r['success'], 'ud': b64(r['user-data'])}))
`, [base(vm)]) as Record<string, unknown>;
    expect(out).toEqual({ success: true, ud: b64(VMS[vm].userData) });
  });
});
