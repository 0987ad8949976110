// The configuration of `serve` and `agent`: one schema for the YAML file, the environment and
// the flags. Precedence: flags > environment > file > defaults (see load.ts).
import { z } from 'zod';
import { parseHostPort, parsePrefix } from '../model/ip.js';

const hostPort = (defaultPort: number) => z.string().refine((s) => parseHostPort(s, defaultPort) !== undefined, `must be ADDR[:PORT] (IPv6 in brackets)`);
const cidr = z.string().refine((s) => parsePrefix(s) !== undefined, 'must be a CIDR prefix');

export const ConfigSchema = z.object({
  store: z.object({
    /** etcd://HOST:PORT[,HOST:PORT] or file:PATH; none means the embedded demo (serve only). */
    url: z.string().optional(),
    prefix: z.string().regex(/^\/[A-Za-z0-9_./-]*$/, 'must start with /').default('/uncloud'),
    tls: z.object({ ca: z.string(), cert: z.string().optional(), key: z.string().optional() }).strict().optional(),
  }).strict().prefault({}),
  log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info') }).strict().prefault({}),
  serve: z.object({
    networks: z.array(z.string()).default([]),
    dns: z.array(hostPort(53)).default([]),
    http: z.array(hostPort(80)).default([]),
    admin: z.array(hostPort(9153)).default(['[::1]:9153']),
    upstreams: z.array(hostPort(53)).default([]),
    /**
     * Pass these upstreams' AD bit to clients (dnsmasq's proxy-dnssec): only when they validate
     * and the path to them cannot be tampered with. Never applies to a network's own upstreams.
     */
    trustUpstreamAd: z.boolean().default(false),
    ttl: z.number().int().min(0).max(86400).default(30),
    bareMetadata: z.boolean().default(true),
    recursionAcl: z.array(cidr).optional(),
    /** TXT answers to CHAOS version.bind / id.server (RFC 4892); unset: REFUSED, as Knot with them off. */
    dnsVersion: z.string().max(255).optional(),
    dnsIdentity: z.string().max(255).optional(),
    /** Response-rate limiting (BIND RRL style) of DNS clients outside the served networks and the ACL. */
    dnsRateLimit: z.object({
      responsesPerSecond: z.number().int().min(0).max(1_000_000).default(20),
      slip: z.number().int().min(0).max(10).default(2),
      ipv4PrefixLength: z.number().int().min(8).max(32).default(24),
      ipv6PrefixLength: z.number().int().min(16).max(128).default(56),
    }).strict().prefault({}),
    /** File holding the IMDSv2 token key; replicas of one network must share it. */
    tokenSecretFile: z.string().optional(),
    /** IP TTL / IPv6 hop limit of IMDSv2 token responses (AWS's http-put-response-hop-limit). */
    tokenHopLimit: z.number().int().min(1).max(255).default(1),
    /** GCE guest attributes a VM may PUT (stored in etcd under its own VM only). */
    guestAttributes: z.object({
      enabled: z.boolean().default(true),
      maxValueBytes: z.number().int().min(1).max(65536).default(4096),
      maxKeys: z.number().int().min(1).max(1024).default(64),
      writesPerMinute: z.number().int().min(1).max(6000).default(30),
    }).strict().prefault({}),
    workers: z.number().int().min(1).max(64).default(1),
  }).strict().prefault({}),
  /** Instance identity (signed tokens and EC2 documents); no keyFile: those paths answer 404. */
  identity: z.object({
    keyFile: z.string().optional(),
    certFile: z.string().optional(),
    issuer: z.string().url('must be a URL (what verifiers know this deployment by)').optional(),
    alg: z.enum(['RS256', 'ES256', 'EdDSA']).default('RS256'),
    accountId: z.string().regex(/^\d{12}$/, 'must be 12 digits, as an AWS account id').default('000000000000'),
  }).strict().prefault({}),
  agent: z.object({
    host: z.string().optional(),
    stateDir: z.string().default('/var/lib/uncloud-metadata/agent'),
    accel: z.enum(['kvm', 'tcg']).optional(),
    qemu: z.string().default('qemu-system-x86_64'),
    /** Disks, kernels and initrds must resolve (after symlinks) to regular files inside one of these. */
    imageDirs: z.array(z.string().refine((d) => d.startsWith('/'), 'must be an absolute directory')).default(['/var/lib/uncloud-metadata/images']),
    /**
     * Existing bridges the agent may put guests on besides those it created; unset: any existing
     * bridge a network names (never a link that is not a bridge).
     */
    bridges: z.array(z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/, 'must be a Linux interface name')).optional(),
    /** The unprivileged user qemu runs as (-runas) and that owns the taps. */
    user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a POSIX user name').default('uncloud-qemu'),
  }).strict().prefault({}),
}).strict();

export type Config = z.output<typeof ConfigSchema>;
