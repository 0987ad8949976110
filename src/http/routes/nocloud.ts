// /nocloud/: a cloud-init NoCloud seed (meta-data, user-data, vendor-data, network-config).
import { toResponse } from '../render/rendered.js';
import { notFound } from '../guards.js';
import type { RouteDeps, VmHandler } from './deps.js';

export function nocloudRoutes(d: RouteDeps): void {
  const serve: VmHandler = (_c, view, path) => {
    const r = d.cache.flat(view, 'nocloud').get(path);
    return r ? toResponse(r) : notFound();
  };
  d.app.get('/nocloud/*', d.guarded('nocloud', '/nocloud', serve));
}
