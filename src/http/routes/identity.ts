// Signed instance identity: GCE's identity token (also at the native /identity) and the
// signatures over EC2's identity document. Without a configured key file these answer 404.
import { plain } from '../render/rendered.js';
import { notFound } from '../guards.js';
import { checkAudience } from '../../identity/jwt.js';
import { SigningRateLimited } from '../../identity/signer.js';
import type { VmView } from '../../registry/registry.js';
import type { RouteDeps, VmHandler } from './deps.js';
import { flavourCheck, GOOGLE as FLAVOR } from './gce.js';

export const GCE_IDENTITY_PATH = '/computeMetadata/v1/instance/service-accounts/default/identity';
const EC2_SIGNED = /^dynamic\/instance-identity\/(signature|pkcs7|rsa2048)$/;

export function identityRoutes(d: RouteDeps): void {
  const token = (extra: Record<string, string>): VmHandler => async (_c, view, _path, query) => {
    if (!d.identity) return plain(404, 'not found\n', extra);
    const q = new URLSearchParams(query);
    const audience = q.get('audience');
    const bad = checkAudience(audience);
    if (bad) return plain(400, `${bad}\n`, extra);
    const format = q.get('format') ?? 'standard';
    if (format !== 'standard' && format !== 'full') return plain(400, 'format must be standard or full\n', extra);
    const licenses = q.get('licenses');
    if (licenses !== null && !/^(true|false)$/i.test(licenses)) return plain(400, 'licenses must be TRUE or FALSE\n', extra);
    const { vm } = view;
    try {
      const jwt = await d.identity.token({
        id: vm.id, name: vm.name, network: vm.network, owner: vm.owner, host: vm.host, createdAt: vm.createdAt,
      }, view.revision, audience!, format === 'full');
      return plain(200, jwt, { ...extra, 'content-type': 'application/text' });
    } catch (err) {
      if (err instanceof SigningRateLimited) return plain(429, 'too many new identity tokens; try again shortly\n', { ...extra, 'retry-after': '1' });
      throw err;
    }
  };
  d.app.get(GCE_IDENTITY_PATH, d.guarded('gce-identity', GCE_IDENTITY_PATH, token(FLAVOR), { pre: flavourCheck, headers: FLAVOR }));
  d.app.get('/identity', d.guarded('native-identity', '/identity', token({})));
}

/**
 * EC2's /signature, /pkcs7 and /rsa2048 for one VM: the signatures over the exact document bytes
 * the same VM is served. undefined when `path` is not one of them.
 */
export function ec2Signed(d: RouteDeps, view: VmView, path: string): Promise<Response> | undefined {
  const m = EC2_SIGNED.exec(path);
  if (!m) return undefined;
  const doc = d.cache.flat(view, 'ec2').get('dynamic/instance-identity/document');
  const signed = doc && d.identity?.ec2(doc.body.toString());
  if (!signed) return Promise.resolve(notFound());
  return signed.then((s) => plain(200, m[1] === 'signature' ? `${s.signature}\n` : s.pkcs7));
}
