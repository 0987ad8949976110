// Where cold start goes: times the etcd range and the Registry reset separately, in process,
// and prints heap and RSS after each. Usage: node bench/load-profile.mjs HOST:PORT PREFIX
import { EtcdKv } from '../dist/store/etcd/kv.js';
import { EtcdSource } from '../dist/store/etcd/source.js';
import { Registry } from '../dist/registry/registry.js';
import { Keys } from '../dist/store/keys.js';
import { silentLogger } from '../dist/log.js';

const [endpoint, prefix] = process.argv.slice(2);
const mem = () => {
  const m = process.memoryUsage();
  const mb = (n) => (n / 2 ** 20).toFixed(0);
  return `rss ${mb(m.rss)} MiB heap ${mb(m.heapUsed)}/${mb(m.heapTotal)} MiB external ${mb(m.external)} MiB`;
};
const kv = new EtcdKv({ endpoints: [endpoint] });
const registry = new Registry({ prefix, log: silentLogger() });
const t0 = performance.now();
if (process.env.SPLIT) {
  // The source's own load (networks and VMs), without the watch.
  const entries = [];
  let revision = await kv.rangeInto(entries, Buffer.from(`${prefix}/networks/`), Buffer.from(`${prefix}/networks0`), 0);
  revision = await kv.rangeInto(entries, Buffer.from(`${prefix}/vms/`), Buffer.from(`${prefix}/vms0`), revision);
  const t1 = performance.now();
  console.log(`range: ${entries.length} entries in ${(t1 - t0).toFixed(0)} ms; ${mem()}`);
  registry.reset(entries, revision);
  const t2 = performance.now();
  console.log(`reset: ${registry.vmCount} VMs in ${(t2 - t1).toFixed(0)} ms; ${mem()}`);
} else {
  const source = new EtcdSource(kv, { ranges: new Keys(prefix).applianceRanges(process.env.NETWORK ? [process.env.NETWORK] : undefined), log: silentLogger() });
  await source.start(registry);
  console.log(`source.start: ${registry.vmCount} VMs in ${(performance.now() - t0).toFixed(0)} ms; ${mem()}`);
  await source.close();
}
await new Promise((r) => setTimeout(r, 500));
console.log(`settled: ${mem()}`);
if (globalThis.gc) {
  globalThis.gc();
  await new Promise((r) => setTimeout(r, 2000));
  console.log(`after a full gc: ${mem()}`);
}
await kv.close();
