// EC2 IMDS: /<version>/meta-data/..., user-data, dynamic/...; IMDSv2 tokens from
// PUT /latest/api/token, checked on every GET that carries one, required when the VM says so.
import { plain, toResponse } from '../render/rendered.js';
import { notFound } from '../guards.js';
import { header } from '../request.js';
import { EC2_VERSIONS } from '../render/ec2.js';
import { issueToken, parseTtl, verifyToken } from './ec2-token.js';
import type { RouteDeps, VmHandler } from './deps.js';
import { ec2Signed } from './identity.js';

const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const unauthorized = () => plain(401, 'unauthorized\n');

export function ec2Routes(d: RouteDeps): void {
  d.app.put('/latest/api/token', d.guarded('ec2-token', '/latest/api/token', (c, view) => {
    const ttl = parseTtl(header(c, TTL_HEADER));
    if (ttl === undefined) return plain(400, `${TTL_HEADER} must be 1-21600\n`);
    return plain(200, issueToken(d.tokenSecret, view, ttl), { [TTL_HEADER]: String(ttl) });
  }));

  const serve: VmHandler = (c, view, path) => {
    const token = header(c, TOKEN_HEADER);
    if (token !== undefined ? !verifyToken(d.tokenSecret, view, token) : view.vm.requireToken) return unauthorized();
    if (path === 'api/token') return plain(405, 'method not allowed\n', { allow: 'PUT' });
    const signed = ec2Signed(d, view, path);
    if (signed) return signed;
    const r = d.cache.flat(view, 'ec2').get(path);
    return r ? toResponse(r) : notFound();
  };
  for (const v of EC2_VERSIONS) {
    d.app.get(`/${v}/*`, d.guarded('ec2', `/${v}`, serve));
  }
}
