// Gauges about the store and the registry, read at scrape time.
import { Counter, Gauge, type Registry as Metrics } from 'prom-client';
import type { Registry } from '../registry/registry.js';
import type { StateSource } from '../store/kv.js';

export function registerStoreMetrics(metrics: Metrics, registry: Registry, source: () => StateSource | undefined): { changes: Counter } {
  const health = () => source()?.health();
  new Gauge({ name: 'uncloud_metadata_registry_vms', help: 'VMs in the registry', registers: [metrics], collect() { this.set(registry.vmCount); } });
  new Gauge({ name: 'uncloud_metadata_registry_networks', help: 'networks served', registers: [metrics], collect() { this.set(registry.networks().length); } });
  new Gauge({ name: 'uncloud_metadata_registry_revision', help: 'store revision the registry reflects', registers: [metrics], collect() { this.set(registry.revision); } });
  new Gauge({ name: 'uncloud_metadata_registry_skipped_records', help: 'invalid records skipped', registers: [metrics], collect() { this.set(registry.skipped); } });
  new Gauge({ name: 'uncloud_metadata_store_connected', help: '1 while the store answers', registers: [metrics], collect() { this.set(health()?.connected ? 1 : 0); } });
  new Gauge({ name: 'uncloud_metadata_store_reloads', help: 'full reloads (compaction, rewind)', registers: [metrics], collect() { this.set(health()?.reloads ?? 0); } });
  new Gauge({ name: 'uncloud_metadata_store_watch_reconnects', help: 'watch stream disconnects', registers: [metrics], collect() { this.set(health()?.reconnects ?? 0); } });
  // An upper bound on how far the registry trails the store: etcd's revision is cluster-wide,
  // so writes outside our prefix count too. A value that only grows means the watch is stuck.
  new Gauge({ name: 'uncloud_metadata_store_watch_lag_revisions', help: 'store revision at the last probe minus the revision the registry reflects (upper bound)', registers: [metrics], collect() {
    const h = health();
    this.set(h?.storeRevision !== undefined ? Math.max(0, h.storeRevision - registry.revision) : 0);
  } });
  const changes = new Counter({ name: 'uncloud_metadata_registry_changes_total', help: 'registry change events', registers: [metrics] });
  registry.on('change', () => changes.inc());
  return { changes };
}
