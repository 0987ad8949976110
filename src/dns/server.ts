// The DNS server the daemon starts: authoritative for every served network's search domain and
// reverse zones, forwarder (with cache and ACL) for everything else, on UDP and TCP.
import type { Socket } from 'node:dgram';
import type { Server, Socket as TcpSocket } from 'node:net';
import type { Logger } from 'pino';
import type { Registry as PromRegistry } from 'prom-client';
import type { Registry } from '../registry/registry.js';
import { Acl, LOOPBACK } from './acl.js';
import type { ChaosIdentity } from './chaos.js';
import type { RateLimitOptions } from './rrl.js';
import { parseUpstreams } from './forwarder.js';
import { DnsMetrics } from './metrics.js';
import { Responder } from './responder.js';
import { TCP_DEFAULTS, listenTcp, type TcpLimits } from './tcp.js';
import { listenUdp } from './transports.js';

export interface DnsServerOptions {
  registry: Registry;
  /** UDP and TCP on each; IPv6 and IPv4 hosts. */
  listen: { host: string; port: number }[];
  /** "ADDR:PORT" / "[V6]:PORT" global forwarders; a network's own `upstreams` win for its clients. */
  upstreams?: string[];
  /** Authoritative TTL, default 30. */
  ttl?: number;
  /** Answer the single-label `metadata.` too, default true. */
  bareMetadata?: boolean;
  /** CIDRs allowed to recurse; default: served networks' prefixes + loopback. */
  recursionAcl?: string[];
  log: Logger;
  metrics?: PromRegistry;
  /** How long a forwarded query may wait for the upstreams in all, default 5000 ms. */
  forwardTimeoutMs?: number;
  /** First retransmission (to the next upstream), default 800 ms, doubling. */
  forwardRetransmitMs?: number;
  /** How long a resolution failure is remembered, default 5000 ms (RFC 9520). */
  forwardFailureTtlMs?: number;
  /** Pass the global upstreams' AD bit on (they validate, and the path to them is trusted). */
  trustUpstreamAd?: boolean;
  /** CHAOS-class version.bind / id.server answers; unset ones are REFUSED. */
  chaos?: ChaosIdentity;
  /** Response-rate limiting of clients outside the served networks and the ACL; see rrl.ts. */
  rateLimit?: Partial<RateLimitOptions>;
  /** TCP connection bounds (tests shrink them); see tcp.ts. */
  tcpLimits?: Partial<TcpLimits>;
}

export interface DnsServer {
  close(): Promise<void>;
}

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const log = opts.log.child({ part: 'dns' });
  const responder = new Responder({
    registry: opts.registry,
    upstreams: parseUpstreams(opts.upstreams ?? []),
    ttl: opts.ttl ?? 30,
    bareMetadata: opts.bareMetadata ?? true,
    recursionAcl: opts.recursionAcl ? Acl.parse(opts.recursionAcl) : undefined,
    log,
    metrics: new DnsMetrics(opts.metrics),
    forwardTimeoutMs: opts.forwardTimeoutMs,
    forwardRetransmitMs: opts.forwardRetransmitMs,
    forwardFailureTtlMs: opts.forwardFailureTtlMs,
    trustUpstreamAd: opts.trustUpstreamAd,
    chaos: opts.chaos,
    rateLimit: opts.rateLimit,
  });
  const udp: Socket[] = [];
  const tcp: { server: Server; connections: Set<TcpSocket> }[] = [];
  const close = async () => {
    responder.close();
    await Promise.all(udp.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const t of tcp) for (const c of t.connections) c.destroy();
    await Promise.all(tcp.map((t) => new Promise<void>((r) => t.server.close(() => r()))));
  };
  try {
    for (const { host, port } of opts.listen) {
      // "::" alone is dual-stack; beside an IPv4 listener on the same port it must be IPv6-only.
      const ipv6Only = opts.listen.some((o) => o.port === port && !o.host.includes(':'));
      udp.push(await listenUdp(host, port, ipv6Only, responder, log));
      tcp.push(await listenTcp(host, port, ipv6Only, responder, log, { ...TCP_DEFAULTS, ...opts.tcpLimits }));
    }
  } catch (err) {
    await close();
    throw err;
  }
  log.info({ listen: opts.listen, upstreams: opts.upstreams ?? [], acl: opts.recursionAcl ?? ['<networks>', ...LOOPBACK] }, 'dns server listening');
  return { close };
}
