// One agent's store side, alone in a process: load and follow what the agent of HOST reads
// (Keys.agentRanges: its network copies, its launch specs, its reports) into a registry fed by launch
// specs, as startAgent does, and print how long that took and what it holds. No qemu is started.
// Usage: node bench/lib/agent-load.mjs HOST:PORT PREFIX HOST
import { EtcdKv } from '../../dist/store/etcd/kv.js';
import { EtcdSource } from '../../dist/store/etcd/source.js';
import { Registry } from '../../dist/registry/registry.js';
import { Keys } from '../../dist/store/keys.js';
import { silentLogger } from '../../dist/log.js';

const [endpoint, prefix, host] = process.argv.slice(2);
const kv = new EtcdKv({ endpoints: [endpoint] });
const registry = new Registry({ prefix, vmsFrom: 'launch', log: silentLogger() });
let entries = 0;
const sink = {
  reset: (e, r) => { entries = e.length; registry.reset(e, r); },
  apply: (c, r) => registry.apply(c, r),
};
const t0 = performance.now();
const source = new EtcdSource(kv, { ranges: new Keys(prefix).agentRanges(host), log: silentLogger() });
await source.start(sink);
const ms = performance.now() - t0;
const mine = [...registry.allVms()].filter((v) => v.vm.host === host).length;
globalThis.gc?.();
await new Promise((r) => setTimeout(r, 500));
console.log(JSON.stringify({ ms, entries, vms: mine, networks: registry.networks().length, rssMiB: process.memoryUsage().rss / 2 ** 20 }));
await source.close();
await kv.close();
