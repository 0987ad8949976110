// "/" (what is served here), "/instance" (the VM as JSON), "/keys" (authorized_keys) and
// "/user-data", "/vendor-data" (the bytes as given).
import { toResponse, plain } from '../render/rendered.js';
import { notFound } from '../guards.js';
import { EC2_VERSIONS } from '../render/ec2.js';
import { GOOGLE } from './gce.js';
import type { RouteDeps } from './deps.js';

const NATIVE_NAMES = ['instance', 'keys', 'user-data', 'vendor-data'];
const ROOT = `${[...EC2_VERSIONS, 'computeMetadata/', 'instance', 'keys', 'nocloud/', 'openstack/', 'user-data', 'vendor-data'].join('\n')}\n`;

export function nativeRoutes(d: RouteDeps): void {
  // google-auth and Go's compute/metadata detect GCE by this header on "/", as GCE sends it.
  d.app.get('/', d.guarded('native', '/', () => plain(200, ROOT, GOOGLE), { headers: GOOGLE }));
  for (const name of NATIVE_NAMES) {
    d.app.get(`/${name}`, d.guarded('native', '/', (_c, view, path) => {
      const r = d.cache.flat(view, 'native').get(path);
      return r ? toResponse(r) : notFound();
    }));
  }
}
