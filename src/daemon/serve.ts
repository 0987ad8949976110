// `serve`: store -> registry -> DNS and HTTP listeners, plus the admin listener.
//
// What happens when the store dies: the source keeps the registry's last good state, DNS and
// HTTP keep answering from it, /readyz says "degraded"; the source reconnects on its own.
// At start-up the first load is retried until it succeeds (the listeners wait for it; the admin
// listener answers /readyz 503 meanwhile). With networks named, only their records are read and
// followed (keys.ts applianceRanges); a named network not in the store yet is waited for, and
// /readyz says "waiting" until it appears. Credentials that may not read a range, or a store in
// an older layout, fail the start with one line.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { openStore, type OpenedStore } from '../store/open.js';
import { StoreAccessError, type StateSource } from '../store/kv.js';
import { networkInterfaces } from 'node:os';
import { metadataAddresses, type Network } from '../model/schema.js';
import { LAYOUT } from '../store/keys.js';
import { Registry } from '../registry/registry.js';
import { parseHostPort } from '../model/ip.js';
import { createMetricsRegistry } from '../metrics.js';
import { startDnsServer } from '../dns/server.js';
import { startHttpServer } from '../http/server.js';
import { wellKnownListens } from './well-known.js';
import { readiness, startAdmin } from './admin.js';
import { collectGarbage } from './compact.js';
import { registerStoreMetrics } from './metrics.js';
import { InstanceIdentity } from '../identity/signer.js';
import { guestAttributes } from './guest-attributes.js';
import { IdentityKeyError } from '../identity/keys.js';
import { DEMO_ADMIN, DEMO_DNS, DEMO_HTTP, demoStatePath, seedDemo } from './demo.js';

export interface Daemon {
  registry: Registry;
  store: OpenedStore;
  close(): Promise<void>;
}

export class ServeError extends Error {}

function listens(list: string[], defaultPort: number, what: string): { host: string; port: number }[] {
  return list.map((s) => {
    const hp = parseHostPort(s, defaultPort);
    if (!hp) throw new ServeError(`${what}: "${s}" is not ADDR[:PORT]`);
    return hp;
  });
}

function tokenSecret(cfg: Config, log: Logger): Buffer {
  if (cfg.serve.tokenSecretFile) {
    const secret = readFileSync(cfg.serve.tokenSecretFile);
    if (secret.length < 16) throw new ServeError(`${cfg.serve.tokenSecretFile}: a token secret needs at least 16 bytes`);
    return secret;
  }
  log.warn('no serve.tokenSecretFile: IMDSv2 tokens are valid on this process only');
  return randomBytes(32);
}

/** A configured key file that cannot be used stops the start; none configured is fine (404s). */
async function loadIdentity(cfg: Config, log: Logger): Promise<InstanceIdentity | undefined> {
  try {
    const identity = await InstanceIdentity.load(cfg.identity);
    if (!identity) log.info('no identity.keyFile: identity tokens and EC2 document signatures answer 404');
    else log.info({ kids: identity.keys.keys.map((k) => k.kid), alg: cfg.identity.alg, issuer: identity.issuer }, 'instance identity keys loaded');
    return identity;
  } catch (err) {
    if (err instanceof IdentityKeyError) throw new ServeError(err.message);
    throw err;
  }
}

async function firstLoad(source: StateSource, registry: Registry, log: Logger, closed: () => boolean): Promise<void> {
  for (let attempt = 0; !closed(); attempt++) {
    try {
      await source.start(registry);
      return;
    } catch (err) {
      if (err instanceof StoreAccessError) throw new ServeError(err.message);
      const delay = Math.min(250 * 2 ** attempt, 5000);
      log.error({ err: (err as Error).message, retryInMs: delay }, 'cannot load the store yet');
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

export async function serve(cfg: Config, log: Logger): Promise<Daemon> {
  const demo = !cfg.store.url;
  let url = cfg.store.url;
  const dns = [...cfg.serve.dns];
  const http = [...cfg.serve.http];
  let admin = [...cfg.serve.admin];
  if (demo) {
    const path = demoStatePath();
    await seedDemo(path, cfg.store.prefix);
    url = `file:${path}`;
    if (!dns.length) dns.push(...DEMO_DNS);
    if (!http.length) http.push(...DEMO_HTTP);
    if (!admin.length) admin = DEMO_ADMIN;
  }
  const store = openStore(url!, { prefix: cfg.store.prefix, tls: cfg.store.tls });
  const registry = new Registry({ prefix: cfg.store.prefix, networks: cfg.serve.networks, log });
  const source = store.source(log, store.keys.applianceRanges(cfg.serve.networks));
  const metrics = createMetricsRegistry();
  registerStoreMetrics(metrics, registry, () => source);
  const closers: (() => Promise<void>)[] = [];
  let closed = false;

  const identity = await loadIdentity(cfg, log);
  const adminServer = await startAdmin({ listen: listens(admin, 9153, 'admin'), readiness: () => readiness(registry, source, missingNetworks(cfg, registry)), metrics, identity });
  closers.push(() => adminServer.close());

  const loadStarted = Date.now();
  try {
    await firstLoad(source, registry, log, () => closed);
    checkLayout(registry, store);
  } catch (err) {
    await adminServer.close();
    await source.close();
    await store.kv.close();
    throw err;
  }
  closers.push(() => source.close());
  collectGarbage();
  // A full reload (compaction, restore, reconnect) replaces every index at once: compact after it too.
  let compactTimer: NodeJS.Timeout | undefined;
  registry.on('change', (c: { all: boolean }) => {
    if (!c.all || compactTimer) return;
    compactTimer = setTimeout(() => { compactTimer = undefined; collectGarbage(); }, 1000);
    compactTimer.unref();
  });
  log.info({ ms: Date.now() - loadStarted, vms: registry.vmCount, revision: registry.revision }, 'store loaded');
  await awaitNetworks(cfg, registry, log, !dns.length || !http.length);

  // With no listen addresses given, listen on each served network's metadata addresses.
  const defaults = (port: number) => registry.networks().flatMap((n) => [
    ...ownReplicaAddresses(n.network).map((host) => ({ host, port })),
  ]);
  const dnsListen = dns.length ? listens(dns, 53, 'dns') : defaults(53);
  // Defaults also take the well-known metadata addresses this host holds.
  const httpListen = http.length ? listens(http, 80, 'http') : [...defaults(80), ...wellKnownListens(registry.networks(), 80, log)];

  const dnsServer = await startDnsServer({
    registry, listen: dnsListen, upstreams: cfg.serve.upstreams, ttl: cfg.serve.ttl,
    bareMetadata: cfg.serve.bareMetadata, recursionAcl: cfg.serve.recursionAcl, trustUpstreamAd: cfg.serve.trustUpstreamAd, log, metrics,
    chaos: { version: cfg.serve.dnsVersion, identity: cfg.serve.dnsIdentity }, rateLimit: cfg.serve.dnsRateLimit,
  });
  closers.push(() => dnsServer.close());
  const httpServer = await startHttpServer({
    registry, listen: httpListen, tokenSecret: tokenSecret(cfg, log), tokenHopLimit: cfg.serve.tokenHopLimit,
    log: log.child({ part: 'http' }), metrics, identity, guestAttributes: guestAttributes(cfg, store),
  });
  closers.push(() => httpServer.close());

  log.info({
    store: store.kv.description, networks: registry.networks().map((n) => n.network.name), vms: registry.vmCount,
    dns: dnsListen, http: httpListen, admin,
  }, 'serving');
  if (demo) {
    // A person is reading this one: plain text on stdout, besides the JSON log.
    process.stdout.write([
      '',
      `uncloud-metadata demo: network "demo", VM "demo-vm" bound to ::1 and 127.0.0.1 (state ${demoStatePath()})`,
      '  dig @::1 -p 1053 metadata AAAA',
      '  dig @::1 -p 1053 demo-vm.demo.uncloud.internal AAAA',
      '  curl http://[::1]:8775/openstack/latest/meta_data.json',
      '  curl http://[::1]:8775/keys',
      '  curl -H "Metadata-Flavor: Google" "http://[::1]:8775/computeMetadata/v1/instance/?recursive=true"',
      '  curl http://[::1]:9153/metrics',
      `  node dist/cli/main.js vm set demo-vm --meta color=blue --store file:${demoStatePath()}`,
      '',
      '',
    ].join('\n'));
  }

  return {
    registry, store,
    async close() {
      closed = true;
      for (const c of closers.reverse()) await c().catch((err) => log.warn({ err: (err as Error).message }, 'error while closing'));
      await store.kv.close();
    },
  };
}

function missingNetworks(cfg: Config, registry: Registry): string[] {
  return cfg.serve.networks.filter((n) => !registry.network(n));
}

/**
 * Named networks not in the store yet: logged, reported on /readyz, and logged again when they
 * appear. Listening on their metadata addresses (no listen address given) has to wait for them.
 */
async function awaitNetworks(cfg: Config, registry: Registry, log: Logger, listenersNeedThem: boolean): Promise<void> {
  let waiting = new Set(missingNetworks(cfg, registry));
  if (!waiting.size) return;
  log.warn({ networks: [...waiting] }, listenersNeedThem
    ? 'network is not in the store (yet); waiting for it before listening on its metadata address'
    : 'network is not in the store (yet); serving it once it appears');
  await new Promise<void>((resolve) => {
    const onChange = (c: { networksChanged: boolean }) => {
      if (!c.networksChanged) return;
      const now = new Set(missingNetworks(cfg, registry));
      for (const n of waiting) if (!now.has(n)) log.info({ network: n }, 'network appeared; serving it');
      waiting = now;
      if (!waiting.size) registry.off('change', onChange);
    };
    registry.on('change', onChange);
    if (!listenersNeedThem) return resolve();
    const all = (c: { networksChanged: boolean }) => {
      if (!c.networksChanged || missingNetworks(cfg, registry).length) return;
      registry.off('change', all);
      resolve();
    };
    registry.on('change', all);
  });
}

/** A store still in an older layout would be served without owners' keys: refuse, in one line. */
function checkLayout(registry: Registry, store: OpenedStore): void {
  if (registry.layout === LAYOUT) return;
  if (registry.layout !== undefined) {
    throw new ServeError(`store at ${store.keys.root} has layout ${registry.layout}; this version reads layout ${LAYOUT}`);
  }
  if (registry.networks().length) {
    throw new ServeError(`store at ${store.keys.root} is in layout 1: run \`uncloud-metadata store migrate\` (this version reads layout ${LAYOUT})`);
  }
}

/**
 * The metadata addresses of a network this replica listens on: those assigned to this host (each
 * replica holds its own); when none is, all of them, so that the bind fails and says which.
 */
function ownReplicaAddresses(n: Network): string[] {
  const { v6, v4 } = metadataAddresses(n);
  const all = [...v6, ...v4];
  if (!n.replicas6?.length && !n.replicas4?.length) return all;
  const local = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  const own = all.filter((a) => local.has(a));
  return own.length ? own : all;
}
