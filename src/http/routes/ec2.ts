// EC2 IMDS: /<version>/meta-data/..., user-data, dynamic/... for every dated version (AWS
// answers any YYYY-MM-DD; Ignition asks 2019-10-01, afterburn 2021-01-03), "1.0" and "latest".
// IMDSv2 tokens from PUT /latest/api/token; the guards check them on every flavour.
import { plain, toResponse } from '../render/rendered.js';
import { notFound } from '../guards.js';
import { isEc2Version } from '../render/ec2.js';
import { issueToken, parseTtl } from './ec2-token.js';
import { setHopLimit } from '../hop-limit.js';
import type { RouteDeps, VmHandler } from './deps.js';
import { ec2Signed } from './identity.js';

const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';

export function ec2Routes(d: RouteDeps): void {
  d.app.put('/latest/api/token', d.guarded('ec2-token', '/latest/api/token', (c, view, _path, _query, s) => {
    const ttl = parseTtl(s.tokenTtl);
    if (ttl === undefined) return plain(400, `${TTL_HEADER} must be 1-21600\n`);
    const socket = c.env?.incoming?.socket;
    // A token that cannot be held to its hop limit is not sent at all.
    if (socket && !setHopLimit(socket, d.tokenHopLimit)) {
      d.log.error('cannot set the hop limit of a token response; connection closed');
      socket.destroy();
      return plain(400, 'bad request\n');
    }
    return plain(200, issueToken(d.tokenSecret, view, ttl), { [TTL_HEADER]: String(ttl) });
  }, { tokenFree: true }));

  const serve: VmHandler = (_c, view, path) => {
    if (path === 'api/token') return plain(405, 'method not allowed\n', { allow: 'PUT' });
    const signed = ec2Signed(d, view, path);
    if (signed) return signed;
    const r = d.cache.flat(view, 'ec2').get(path);
    return r ? toResponse(r) : notFound();
  };
  const versioned: VmHandler = (c, view, path, query, s) => {
    const slash = path.indexOf('/');
    if (!isEc2Version(slash < 0 ? path : path.slice(0, slash))) return notFound();
    return serve(c, view, slash < 0 ? '' : path.slice(slash + 1), query, s);
  };
  // Hono's pattern only narrows the shape; isEc2Version decides (months 01-12, days 01-31).
  for (const v of ['1.0', 'latest', ':version{[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]}']) {
    d.app.get(`/${v}/*`, d.guarded('ec2', '/', versioned));
  }
}
