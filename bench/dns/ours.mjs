// Our DNS server on a hand-fed in-memory Registry (no store): one network, a few VMs.
// Usage: node ours.mjs PORT [UPSTREAM]   (run `npm run build` first; imports from dist/)
import { Registry } from '../../dist/registry/registry.js';
import { startDnsServer } from '../../dist/dns/server.js';
import { silentLogger } from '../../dist/log.js';
import { createMetricsRegistry } from '../../dist/metrics.js';

const [port, upstream] = [Number(process.argv[2]), process.argv[3]];
const log = silentLogger();
const registry = new Registry({ log });
const k = registry.keys;
const entries = [
  { key: k.network('lab'), value: JSON.stringify({ v: 1, name: 'lab', prefix6: '2001:db8:1::/64', domain: 'lab.example', metadata6: '2001:db8:1::1', upstreams: [] }) },
  ...Array.from({ length: 100 }, (_, i) => ({
    key: k.vm('lab', `vm${i}`),
    value: JSON.stringify({
      v: 1, id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`, name: `vm${i}`, network: 'lab',
      mac: `52:54:00:00:01:${i.toString(16).padStart(2, '0')}`, createdAt: new Date(0).toISOString(),
    }),
  })),
].map((e, i) => ({ ...e, createRevision: i + 1, modRevision: i + 1 }));
registry.reset(entries, entries.length);
if (registry.networks().length !== 1 || registry.vmCount !== 100) throw new Error('bench registry did not load');
await startDnsServer({
  registry, log, metrics: createMetricsRegistry(false),
  listen: [{ host: '127.0.0.1', port }], upstreams: upstream ? [upstream] : [],
});
process.send?.('ready');
