// One etcd3 client, configured so that failures surface instead of hiding in retries:
// no global retry policy, no circuit breaker, a deadline on every unary call, and a bounded
// exponential backoff for watch streams (the only reconnect we let the library do).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Etcd3 } from 'etcd3';
import { guardWatchManager } from './watch-guard.js';

// etcd3 pulls in gRPC and protobufjs (most of a CLI command's start-up time): load it only when a
// command actually talks to etcd, not for file stores, --help or config checks.
const require = createRequire(import.meta.url);

// gRPC sets the TLS server name to the endpoint's IP address, which Node flags (DEP0123) on
// every connection; the certificate's IP SAN is still checked. Keep that one warning off
// stderr, where a CLI error must stay one line.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
  const code = typeof rest[0] === 'object' && rest[0] ? (rest[0] as { code?: string }).code : rest[1];
  if (code === 'DEP0123') return;
  (emitWarning as (...a: unknown[]) => void)(warning, ...rest);
}) as typeof process.emitWarning;

export interface EtcdTls {
  ca: string;
  cert?: string;
  key?: string;
}

export interface EtcdOptions {
  endpoints: string[];
  tls?: EtcdTls;
  /** Deadline of one unary call. */
  callTimeoutMs?: number;
}

export function createEtcdClient(opts: EtcdOptions): Etcd3 {
  const scheme = opts.tls ? 'https' : 'http';
  const timeout = opts.callTimeoutMs ?? 5000;
  const { Etcd3: Client } = require('etcd3') as typeof import('etcd3');
  guardWatchManager(require('etcd3/lib/watch.js').WatchManager);
  const { ExponentialBackoff, noop } = require('cockatiel') as typeof import('cockatiel');
  return new Client({
    hosts: opts.endpoints.map((e) => (/^https?:\/\//.test(e) ? e : `${scheme}://${e}`)),
    dialTimeout: timeout,
    credentials: opts.tls
      ? {
          rootCertificate: readFileSync(opts.tls.ca),
          certChain: opts.tls.cert ? readFileSync(opts.tls.cert) : undefined,
          privateKey: opts.tls.key ? readFileSync(opts.tls.key) : undefined,
        }
      : undefined,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: {
      global: noop,
      host: () => noop,
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2000 }).next(),
    },
    grpcOptions: {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // Pings only while a call (the watch stream) is open: etcd's server rejects pings on idle
      // connections as "excess pings" (its enforcement policy does not permit them without a stream).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
    },
  });
}
