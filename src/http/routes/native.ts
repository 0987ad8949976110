// "/" (what is served here), "/instance" (the VM as JSON) and "/keys" (authorized_keys).
import { toResponse, plain } from '../render/rendered.js';
import { notFound } from '../guards.js';
import { EC2_VERSIONS } from '../render/ec2.js';
import type { RouteDeps } from './deps.js';

const ROOT = `${[...EC2_VERSIONS, 'computeMetadata/', 'instance', 'keys', 'nocloud/', 'openstack/'].join('\n')}\n`;

export function nativeRoutes(d: RouteDeps): void {
  d.app.get('/', d.guarded('native', '/', () => plain(200, ROOT)));
  for (const name of ['instance', 'keys']) {
    d.app.get(`/${name}`, d.guarded('native', '/', (_c, view, path) => {
      const r = d.cache.flat(view, 'native').get(path);
      return r ? toResponse(r) : notFound();
    }));
  }
}
