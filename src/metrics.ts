// Prometheus metrics (prom-client). One registry per daemon; each part registers its own
// metrics in its own folder (dns/metrics.ts, http/metrics.ts, ...) against this registry.
import { Registry, collectDefaultMetrics } from 'prom-client';

export type MetricsRegistry = Registry;

export function createMetricsRegistry(defaults = true): Registry {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'uncloud_metadata_' });
  return registry;
}
