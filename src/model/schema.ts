// The records kept in the store. Every value is versioned JSON (`v`) checked by these schemas
// on read and on write; a record that fails is logged and skipped by readers.
import { z } from 'zod';
import { isDnsLabel, normalizeDomain } from './names.js';
import { normalizeAddress, parseAddress, parseHostPort, parsePrefix } from './ip.js';
import { normalizeMac } from './mac.js';
import { checkSshKey } from './ssh.js';
import { placementProblem } from './placement.js';
import { MAX_DATA_BYTES, isCanonicalBase64 } from './user-data.js';

const label = z.string().refine(isDnsLabel, 'must be a DNS label (a-z, 0-9, inner hyphens, at most 63)');
const domain = z.string().transform((s, ctx) => {
  const d = normalizeDomain(s);
  if (!d) ctx.addIssue({ code: 'custom', message: `"${s}" is not a domain name` });
  return d ?? s;
});
const prefix = (family: 4 | 6) =>
  z.string().refine((s) => parsePrefix(s, family) !== undefined, `must be an IPv${family} prefix in CIDR form with zero host bits`)
    .transform((s) => parsePrefix(s, family)!.text);
const address = (family?: 4 | 6) =>
  z.string().transform((s, ctx) => {
    const a = parseAddress(s);
    if (!a || (family && a.kind() !== `ipv${family}`)) {
      ctx.addIssue({ code: 'custom', message: `"${s}" is not an IPv${family ?? '4/IPv6'} address` });
      return s;
    }
    return a.toString();
  });
const hostPort = z.string().transform((s, ctx) => {
  const hp = parseHostPort(s, 53);
  if (!hp) ctx.addIssue({ code: 'custom', message: `"${s}" is not ADDR[:PORT]` });
  return hp ? (hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`) : s;
});
const mac = z.string().transform((s, ctx) => {
  const m = normalizeMac(s);
  if (!m) ctx.addIssue({ code: 'custom', message: `"${s}" is not a unicast MAC address` });
  return m ?? s;
});
const sshKey = z.string().transform((s, ctx) => {
  const r = checkSshKey(s);
  if ('error' in r) ctx.addIssue({ code: 'custom', message: r.error });
  return 'key' in r ? r.key : s;
});

export const NetworkSchema = z.object({
  v: z.literal(1),
  name: label,
  prefix6: prefix(6),
  prefix4: prefix(4).optional(),
  domain,
  metadata6: address(6),
  metadata4: address(4).optional(),
  upstreams: z.array(hostPort).default([]),
  bridge: z.string().regex(/^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,14}$/, 'must be a Linux interface name (at most 15 characters)').optional(),
  /** Placement served to every VM of the network; defaults in placement.ts (placementOf). */
  region: z.string().optional(),
  zone: z.string().optional(),
  /** DNS: answer this network's names and PTRs to any client (default: only served networks and the ACL). */
  dnsPublic: z.boolean().optional(),
  /** DNS: answer `metadata.google.internal` with the metadata addresses (default true). */
  dnsGoogleInternal: z.boolean().optional(),
  /** More metadata addresses, one per further appliance replica: `metadata` answers all of them. */
  replicas6: z.array(address(6)).optional(),
  replicas4: z.array(address(4)).optional(),
  /** Where the hosts may route this network's guests: other networks by name, or "*" for anywhere. Default: nowhere. */
  forwardTo: z.array(z.union([label, z.literal('*')])).optional(),
}).strict().superRefine((n, ctx) => {
  const placement = placementProblem(n.region, n.zone);
  if (placement) ctx.addIssue({ code: 'custom', path: [placement.field], message: placement.message });
  const p6 = parsePrefix(n.prefix6, 6);
  if (p6 && p6.length > 64) ctx.addIssue({ code: 'custom', path: ['prefix6'], message: 'must be /64 or shorter (SLAAC needs 64 bits of interface id)' });
});
export type Network = z.output<typeof NetworkSchema>;

/**
 * A network as the agent of a host running its VMs reads it (hosts/<host>/networks/<network>): the
 * fields that shape bridges, taps and nftables rules, and `forwardTo` resolved by the writer to the
 * target networks' prefixes ("::/0" and "0.0.0.0/0" for anywhere), so the agent never reads other
 * networks' records.
 */
export const HostNetworkSchema = z.object({
  v: z.literal(1),
  network: NetworkSchema,
  forward6: z.array(prefix(6)),
  forward4: z.array(prefix(4)),
}).strict();
export type HostNetwork = z.output<typeof HostNetworkSchema>;
/** The network fields a host copy keeps (placement, upstreams and DNS switches stay with the appliance). */
export const HOST_NETWORK_FIELDS = ['v', 'name', 'prefix6', 'prefix4', 'domain', 'metadata6', 'metadata4', 'bridge', 'replicas6', 'replicas4'] as const;

/** Every address `metadata` has in this network: the first replica's, then the others'. */
export function metadataAddresses(n: Pick<Network, 'metadata6' | 'metadata4' | 'replicas6' | 'replicas4'>): { v6: string[]; v4: string[] } {
  return {
    v6: [n.metadata6, ...(n.replicas6 ?? [])],
    v4: [...(n.metadata4 ? [n.metadata4] : []), ...(n.replicas4 ?? [])],
  };
}
/**
 * SLAAC and the EUI-64 identity need exactly a /64. New records must have one (the writer
 * refuses others); an older record with a shorter prefix is still read, but not served.
 */
export function isSlaac64(network: Pick<Network, 'prefix6'>): boolean {
  return parsePrefix(network.prefix6, 6)?.length === 64;
}
export const PREFIX6_64_MESSAGE = 'prefix6 must be a /64 (SLAAC and the EUI-64 identity need exactly 64 bits of interface id)';

export const UserKeySchema = z.object({ name: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'key names are 1-64 of A-Z a-z 0-9 _ . @ -'), key: sshKey }).strict();
export const UserSchema = z.object({
  v: z.literal(1),
  name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a POSIX user name (a-z, 0-9, _ and -, at most 32)'),
  keys: z.array(UserKeySchema).default([]),
}).strict();
export type User = z.output<typeof UserSchema>;

const base64Data = z.string().refine((s) => isCanonicalBase64(s), `must be canonical base64 of at most ${MAX_DATA_BYTES} bytes`);

export const ResourcesSchema = z.object({
  memoryMiB: z.number().int().min(16).max(4 * 1024 * 1024).default(512),
  cpus: z.number().int().min(1).max(512).default(1),
  disk: z.string().min(1).optional(),
  /** Always given to qemu explicitly: a raw disk is never probed (its guest could make it look like qcow2). */
  diskFormat: z.enum(['raw', 'qcow2']).optional(),
  /** A kernel may come with a disk (direct boot with the disk as root) or alone. */
  kernel: z.string().min(1).optional(),
  initrd: z.string().min(1).optional(),
  cmdline: z.string().optional(),
}).strict().refine((r) => !(r.initrd || r.cmdline) || r.kernel, 'initrd and cmdline need a kernel')
  .refine((r) => !r.diskFormat || r.disk, 'diskFormat needs a disk');

export const VmSchema = z.object({
  v: z.literal(1),
  id: z.uuid(),
  name: label,
  network: label,
  owner: z.string().optional(),
  mac,
  /** Addresses given explicitly; the EUI-64 address of the MAC is derived, not stored. */
  addresses: z.array(address()).default([]),
  host: z.string().regex(/^[A-Za-z0-9_.-]{1,253}$/).optional(),
  resources: ResourcesSchema.default({ memoryMiB: 512, cpus: 1 }),
  /**
   * User-data and vendor-data as UTF-8 text, or (when the bytes are not UTF-8) as base64; never
   * both (user-data.ts). The writer limits the bytes to MAX_DATA_BYTES; reads keep the older
   * limit of the text field (characters), so no record written before is dropped.
   */
  userData: z.string().max(MAX_DATA_BYTES).optional(),
  userDataBase64: base64Data.optional(),
  vendorData: z.string().max(MAX_DATA_BYTES).optional(),
  vendorDataBase64: base64Data.optional(),
  meta: z.record(z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/), z.string().max(4096)).default({}),
  sshKeys: z.array(sshKey).default([]),
  /** EC2 IMDSv2: refuse GETs without a session token. */
  requireToken: z.boolean().default(false),
  createdAt: z.string(),
}).strict().superRefine((vm, ctx) => {
  for (const k of ['userData', 'vendorData'] as const) {
    if (vm[k] !== undefined && vm[`${k}Base64`] !== undefined) ctx.addIssue({ code: 'custom', path: [`${k}Base64`], message: `a VM holds ${k} as text or as base64, not both` });
  }
});
export type Vm = z.output<typeof VmSchema>;
export type VmInput = z.input<typeof VmSchema>;

/** What the agent reports about a VM it runs. */
export const VmStateSchema = z.object({
  v: z.literal(1),
  host: z.string(),
  state: z.enum(['starting', 'running', 'stopped', 'failed']),
  pid: z.number().int().optional(),
  since: z.string(),
  restarts: z.number().int().default(0),
  lastError: z.string().optional(),
}).strict();
export type VmState = z.output<typeof VmStateSchema>;

/** A host's heartbeat, kept alive by an etcd lease. */
export const HostSchema = z.object({
  v: z.literal(1),
  name: z.string(),
  since: z.string(),
  version: z.string(),
  vms: z.number().int().default(0),
}).strict();
export type Host = z.output<typeof HostSchema>;

/** One line naming the first problem, for CLI errors and skip logs. */
export function describeIssues(error: z.ZodError): string {
  const first = error.issues[0];
  const where = first.path.length ? `${first.path.join('.')}: ` : '';
  return `${where}${first.message}`;
}

export { normalizeAddress };

/** What a guest reported about itself (GCE guest attributes), written by the appliance. */
export const GUEST_ATTRIBUTE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const GuestAttributesSchema = z.object({
  v: z.literal(1),
  /** The VM these belong to: a VM re-created under the same name never sees its predecessor's. */
  vmId: z.uuid(),
  namespaces: z.record(z.string().regex(GUEST_ATTRIBUTE_NAME), z.record(z.string().regex(GUEST_ATTRIBUTE_NAME), z.string().max(65536))),
}).strict();
export type GuestAttributes = z.output<typeof GuestAttributesSchema>;
