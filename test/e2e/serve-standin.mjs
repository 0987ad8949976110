// Used by the VM test only while the CLI has no `serve`: the same parts serve wires (store ->
// registry -> DNS + HTTP), from dist/. Args: STORE_URL NETWORK DNS_HOST HTTP_HOST
import { randomBytes } from 'node:crypto';
const dist = new URL('../../dist/', import.meta.url);
const { openStore } = await import(new URL('store/open.js', dist));
const { Registry } = await import(new URL('registry/registry.js', dist));
const { startDnsServer } = await import(new URL('dns/server.js', dist));
const { startHttpServer } = await import(new URL('http/server.js', dist));
const { createLogger } = await import(new URL('log.js', dist));
const [url, network, dnsHost, httpHost] = process.argv.slice(2);
const log = createLogger('info');
const store = openStore(url);
const registry = new Registry({ prefix: store.keys.prefix, networks: [network], log });
await store.source(log).start(registry);
await startDnsServer({ registry, listen: [{ host: dnsHost, port: 53 }], log });
await startHttpServer({ registry, listen: [{ host: httpHost, port: 80 }], tokenSecret: randomBytes(32), log });
log.info('serve stand-in ready');
