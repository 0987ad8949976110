// /openstack: the version listing, and per version meta_data.json, user_data, vendor data and
// network_data.json.
import { toResponse } from '../render/rendered.js';
import { notFound } from '../guards.js';
import type { RouteDeps, VmHandler } from './deps.js';

export function openstackRoutes(d: RouteDeps): void {
  const serve: VmHandler = (_c, view, path) => {
    const r = d.cache.flat(view, 'openstack').get(path);
    return r ? toResponse(r) : notFound();
  };
  d.app.get('/openstack/*', d.guarded('openstack', '/openstack', serve));
}
