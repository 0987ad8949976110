// What to answer, independent of transport. `fast` serves the UDP hot path from the wire cache
// (no decode); `respond` is the full path: parse, authoritative answer or forward, and fill the
// cache. Everything derived from the registry is dropped on its 'change' event and rebuilt lazily.
import type { Logger } from 'pino';
import type { Registry, RegistryChange } from '../registry/registry.js';
import { parseAddress } from '../model/ip.js';
import { Acl } from './acl.js';
import { chaosAnswer, type ChaosIdentity } from './chaos.js';
import { RRL_DEFAULTS, ResponseRateLimiter, slipResponse, type RateLimitOptions } from './rrl.js';
import { Authority } from './authority.js';
import { AnswerCache, hotQuestion, serveCached, type CachedWire } from './answer-cache.js';
import { encodeAnswer } from './encode.js';
import { forwardedResponse } from './forwarded-answer.js';
import { Forwarder, parseUpstreams, type Question, type Upstream } from './forwarder.js';
import type { DnsMetrics } from './metrics.js';
import {
  CLASS_ANY, CLASS_IN, FLAG, HEADER_LEN, RCODE, RCODE_BADVERS, TYPE, errorResponse, parseQuery, udpLimit,
} from './wire.js';

export interface ResponderOptions {
  registry: Registry;
  upstreams: Upstream[];
  ttl: number;
  bareMetadata: boolean;
  /** Fixed ACL; undefined means "served prefixes + loopback", recomputed on network changes. */
  recursionAcl?: Acl;
  log: Logger;
  metrics: DnsMetrics;
  forwardTimeoutMs?: number;
  forwardRetransmitMs?: number;
  forwardFailureTtlMs?: number;
  /** Pass the AD bit of the global upstreams on (dnsmasq's proxy-dnssec): only for a validating upstream on a trusted path. */
  trustUpstreamAd?: boolean;
  /** CHAOS-class version.bind / id.server answers; unset ones are REFUSED. */
  chaos?: ChaosIdentity;
  /** Response-rate limiting of clients outside the trusted set; see rrl.ts. */
  rateLimit?: Partial<RateLimitOptions>;
}

interface ClientInfo {
  allowed: boolean;
  /** Which upstream set (and so which forward-cache partition) this client uses. */
  group: string;
  upstreams: Upstream[];
  /** The upstreams' AD bit may be passed on (the operator's global upstreams, marked trusted). */
  trustAd: boolean;
  /** May see authoritative data (served networks, loopback, the recursion ACL); exempt from rate limiting. */
  trusted: boolean;
  /** The network whose `metadata` a bare `metadata.` query gets. */
  metaNet?: string;
  /** That network answers `metadata.google.internal` too. */
  googleName: boolean;
  /** Answer-cache variants for this client (built once: the hot path compares, never concatenates). */
  forwardVariant: string;
  metaVariant?: string;
}

/** `metadata.` as it starts a hot-path key: the bare single-label name, then QTYPE. */
const BARE_METADATA_KEY = '\x08metadata\x00';
const GOOGLE_METADATA_KEY = '\x08metadata\x06google\x08internal\x00';
const GOOGLE_METADATA = 'metadata.google.internal';
const MAX_CLIENTS = 10_000;

export class Responder {
  private authorityCache?: Authority;
  /** Answers from our zones: dropped when the registry changes. */
  private authCache = new AnswerCache();
  /** Forwarded answers: they age by their TTLs and survive VM changes (not network changes). */
  private fwdCache = new AnswerCache();
  private clients = new Map<string, ClientInfo>();
  private lastAddress?: string;
  private lastClient?: ClientInfo;
  private acl: Acl;
  /** Who sees authoritative data of networks without dnsPublic: served networks, and the recursion ACL (default loopback). */
  private trustedAcl: Acl;
  private readonly rrl: ResponseRateLimiter;
  private readonly forwarder: Forwarder;
  private recursionOffered: boolean;
  private readonly onChange: (c: RegistryChange) => void;

  constructor(private readonly opts: ResponderOptions) {
    this.acl = opts.recursionAcl ?? Acl.forNetworks(opts.registry);
    this.trustedAcl = this.computeTrustedAcl();
    this.rrl = new ResponseRateLimiter({ ...RRL_DEFAULTS, ...opts.rateLimit });
    this.recursionOffered = this.computeRecursionOffered();
    this.forwarder = new Forwarder({
      log: opts.log, metrics: opts.metrics, timeoutMs: opts.forwardTimeoutMs, retransmitMs: opts.forwardRetransmitMs,
      failureTtlMs: opts.forwardFailureTtlMs,
    });
    this.onChange = (c) => {
      // A VM change replaces only that VM's records; networks changing (or a reload) rebuild all,
      // and may turn forwarded names into ours, so the forward cache goes too.
      this.authCache.clear();
      if (c.networksChanged || c.all) {
        this.authorityCache = undefined;
        this.fwdCache.clear();
        this.clients = new Map();
        this.lastClient = undefined;
        if (!opts.recursionAcl) this.acl = Acl.forNetworks(opts.registry);
        this.trustedAcl = this.computeTrustedAcl();
        this.recursionOffered = this.computeRecursionOffered();
      } else {
        this.authorityCache?.updateVms(opts.registry, c.vms);
      }
      opts.log.debug({ generation: c.generation, revision: c.revision }, 'dns answers invalidated');
    };
    opts.registry.on('change', this.onChange);
  }

  close(): void {
    this.opts.registry.off('change', this.onChange);
    this.forwarder.close();
  }

  /** A cached answer for a plain UDP query, or undefined to take the full path. */
  fast(msg: Buffer, address: string): Buffer | undefined {
    const h = hotQuestion(msg);
    if (!h) return undefined;
    const c = this.client(address);
    const variant = this.variant(h.key, c);
    // Our own names first (a name is in at most one of the two caches); no allocation on this path.
    const auth = this.authCache.get(h.key);
    let e = auth ? auth.shared ?? auth.variants?.get(variant) : undefined;
    let now = 0;
    let ours = false;
    if (e) {
      // Outsiders take the full path: a network may be closed to them, and they are rate-limited.
      if (!c.trusted) return undefined;
      ours = true;
    } else {
      e = this.fwdCache.get(h.key)?.variants?.get(variant);
      if (!e || !c.allowed) return undefined;
      now = Date.now();
      if (e.expiresAt <= now) return undefined;
    }
    this.opts.metrics.cacheHits++;
    this.opts.metrics.query(h.qtype, e.rcode);
    const out = serveCached(e, msg, h.questionEnd, now);
    // Our answers are shared by clients that may recurse and clients that may not: RA is theirs.
    if (ours) out[3] = (out[3] & 0x7f) | (c.allowed && this.recursionOffered ? 0x80 : 0);
    return out;
  }

  /** The full path for any query over any transport; undefined means stay silent. Never throws. */
  async respond(msg: Buffer, address: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    try {
      const out = await this.respondUnsafe(msg, address, transport);
      // Clients outside the served networks and the ACL are rate-limited over UDP (TCP cannot be spoofed).
      if (!out || transport !== 'udp' || !this.rrl.enabled || this.client(address).trusted) return out;
      const verdict = this.rrl.check(address);
      if (verdict !== 'send') this.opts.metrics.rateLimited(verdict);
      return verdict === 'send' ? out : verdict === 'slip' ? slipResponse(out) : undefined;
    } catch (err) {
      // A bug, not bad input: answer SERVFAIL if we can, and say so in the log.
      this.opts.log.error({ err: (err as Error).message, stack: (err as Error).stack }, 'dns query failed');
      const p = parseQuery(msg);
      return p.ok ? errorResponse(msg, p.query.id, p.query.flags, RCODE.SERVFAIL, p.query.questionEnd, { edns: p.query.ednsPayload !== undefined }) : undefined;
    }
  }

  private async respondUnsafe(msg: Buffer, address: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const metrics = this.opts.metrics;
    const p = parseQuery(msg);
    if (!p.ok) {
      if (p.silent) return undefined;
      metrics.query(0, p.rcode);
      if (p.rcode === RCODE_BADVERS) return errorResponse(msg, p.id, p.flags, 0, p.questionEnd, { edns: true, extendedRcodeHigh: 1 });
      return errorResponse(msg, p.id, p.flags, p.rcode, p.questionEnd, { edns: p.ednsPayload !== undefined });
    }
    metrics.cacheMisses++;
    const q = p.query;
    const edns = q.ednsPayload !== undefined;
    const limit = transport === 'tcp' ? 65535 : udpLimit(q.ednsPayload);
    const hot = transport === 'udp' ? hotQuestion(msg) : undefined;
    const c = this.client(address);
    // RA only to clients that may recurse (RFC 1035 §4.1.1: recursion is available to *them*).
    const ra = c.allowed && this.recursionOffered;
    const refuse = (aa = false) => {
      metrics.query(q.qtype, RCODE.REFUSED);
      return errorResponse(msg, q.id, q.flags, RCODE.REFUSED, q.questionEnd, { edns, aa, ra, dnssecOk: q.dnssecOk });
    };
    const auth = this.authority();
    if (q.qtype === TYPE.AXFR || q.qtype === TYPE.IXFR) return refuse();
    if (q.qclass !== CLASS_IN && q.qclass !== CLASS_ANY) {
      const chaos = chaosAnswer(q.qname, q.qtype, q.qclass, this.opts.chaos ?? {});
      if (!chaos) return refuse();
      metrics.query(q.qtype, chaos.rcode);
      return encodeAnswer(msg, q.id, q.flags, chaos, { qname: q.qname, questionEnd: q.questionEnd, edns, dnssecOk: q.dnssecOk, limit, aa: false, ra });
    }

    const bare = c.metaNet !== undefined && ((this.opts.bareMetadata && q.qname === 'metadata') || (c.googleName && q.qname === GOOGLE_METADATA));
    const answer = bare ? auth.clientMetadata(c.metaNet!, q.qname, q.qtype) : auth.lookup(q.qname, q.qtype);
    if (answer) {
      // A network's names and reverse names are for its own side unless it is public (they list VMs).
      if (!c.trusted && !this.opts.registry.network(answer.network)?.network.dnsPublic) return refuse();
      const out = encodeAnswer(msg, q.id, q.flags, answer, {
        qname: q.qname, questionEnd: q.questionEnd, edns, dnssecOk: q.dnssecOk, limit, aa: true, ra,
      });
      // Cached answers are served to trusted clients only (with each one's own RA, see fast()).
      if (hot && c.trusted) {
        const e = entry(out, q.qtype, answer.rcode, false);
        if (bare) this.authCache.setVariant(hot.key, c.metaVariant!, e);
        else this.authCache.setShared(hot.key, e);
      }
      metrics.query(q.qtype, answer.rcode);
      return out;
    }

    // Not ours: forward, but only for clients allowed to recurse, and only if there is anywhere to go.
    if (!c.allowed || !c.upstreams.length) return refuse();
    const qnameWire = Buffer.from(msg.subarray(HEADER_LEN, q.questionEnd - 4));
    for (let i = 0; i < qnameWire.length; i++) if (qnameWire[i] >= 65 && qnameWire[i] <= 90) qnameWire[i] += 32;
    const question: Question = {
      qnameWire, qname: q.qname, qtype: q.qtype, qclass: q.qclass, dnssecOk: q.dnssecOk, checkingDisabled: (q.flags & FLAG.CD) !== 0,
    };
    // RD=0 (BIND's answer): what the cache holds, else REFUSED; never a query upstream.
    const a = q.flags & FLAG.RD ? await this.forwarder.resolve(question, c.upstreams, c.group) : this.forwarder.cached(question, c.group);
    if (!a) return refuse();
    // AD only from an upstream the operator trusts, and only to a client that asked (DO or AD, RFC 6840 §5.7).
    const adAsked = q.dnssecOk || (q.flags & FLAG.AD) !== 0;
    const ad = c.trustAd && a.authenticData && adAsked;
    const now = Date.now();
    const { out, ttlCount } = forwardedResponse(msg, q, a, limit, ad, now);
    if (hot && a.expiresAt > now) {
      const e = entry(out, q.qtype, a.rcode, true);
      e.ttlOffsets = a.ttlOffsets.slice(0, ttlCount);
      e.ttls = a.ttls.slice(0, ttlCount);
      e.storedAt = a.storedAt;
      e.expiresAt = a.expiresAt;
      // Without DO the cache key is shared by clients that set AD and clients that did not.
      e.adFollowsQuery = ad && !q.dnssecOk;
      this.fwdCache.setVariant(hot.key, c.forwardVariant, e);
    }
    metrics.query(q.qtype, a.rcode);
    return out;
  }

  private authority(): Authority {
    this.authorityCache ??= new Authority(this.opts.registry, this.opts.ttl);
    return this.authorityCache;
  }

  private variant(key: string, c: ClientInfo): string {
    if (c.metaVariant === undefined) return c.forwardVariant;
    if (this.opts.bareMetadata && key.startsWith(BARE_METADATA_KEY)) return c.metaVariant;
    return c.googleName && key.startsWith(GOOGLE_METADATA_KEY) ? c.metaVariant : c.forwardVariant;
  }

  private client(address: string): ClientInfo {
    // One flooding or chatty client asks many times in a row: skip the map for it.
    if (address === this.lastAddress && this.lastClient) return this.lastClient;
    let c = this.clients.get(address);
    if (c) {
      this.lastAddress = address;
      this.lastClient = c;
      return c;
    }
    const addr = parseAddress(address);
    const net = addr ? this.opts.registry.networkForAddress(addr) : undefined;
    const own = net?.network.upstreams.length ? parseUpstreams(net.network.upstreams) : undefined;
    const all = this.opts.registry.networks();
    const group = own ? net!.network.name : '';
    const metaView = net ?? (all.length === 1 ? all[0] : undefined);
    const metaNet = metaView?.network.name;
    c = {
      allowed: this.acl.allows(address), trusted: this.trustedAcl.allows(address), group, upstreams: own ?? this.opts.upstreams, metaNet, trustAd: !own && !!this.opts.trustUpstreamAd,
      googleName: metaView !== undefined && metaView.network.dnsGoogleInternal !== false,
      forwardVariant: `f${group}`, metaVariant: metaNet === undefined ? undefined : `m${metaNet}`,
    };
    if (this.clients.size >= MAX_CLIENTS) this.clients = new Map();
    this.clients.set(address, c);
    return c;
  }

  /** Served networks plus the configured recursion ACL (which replaces loopback, as it does for recursion). */
  private computeTrustedAcl(): Acl {
    return this.opts.recursionAcl ? Acl.union(Acl.servedPrefixes(this.opts.registry), this.opts.recursionAcl) : Acl.forNetworks(this.opts.registry);
  }

  private computeRecursionOffered(): boolean {
    return this.opts.upstreams.length > 0 || this.opts.registry.networks().some((n) => n.network.upstreams.length > 0);
  }
}

function entry(wire: Buffer, qtype: number, rcode: number, recursive: boolean): CachedWire {
  return { wire, qtype, rcode, recursive, ttlOffsets: [], ttls: [], storedAt: 0, expiresAt: Infinity };
}
