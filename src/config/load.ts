// Reads the YAML file, overlays the environment and the flags, validates once, and names the
// offending key on error. Precedence: flags > environment > file > defaults.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {}

type Layer = Record<string, unknown>;

/** Environment variables, each mapped to a config path. Lists are comma-separated. */
export const ENVIRONMENT: Record<string, { path: string[]; kind: 'string' | 'list' | 'number' | 'boolean' }> = {
  UNCLOUD_METADATA_STORE: { path: ['store', 'url'], kind: 'string' },
  UNCLOUD_METADATA_PREFIX: { path: ['store', 'prefix'], kind: 'string' },
  UNCLOUD_METADATA_ETCD_CA: { path: ['store', 'tls', 'ca'], kind: 'string' },
  UNCLOUD_METADATA_ETCD_CERT: { path: ['store', 'tls', 'cert'], kind: 'string' },
  UNCLOUD_METADATA_ETCD_KEY: { path: ['store', 'tls', 'key'], kind: 'string' },
  UNCLOUD_METADATA_LOG_LEVEL: { path: ['log', 'level'], kind: 'string' },
  UNCLOUD_METADATA_NETWORKS: { path: ['serve', 'networks'], kind: 'list' },
  UNCLOUD_METADATA_DNS: { path: ['serve', 'dns'], kind: 'list' },
  UNCLOUD_METADATA_HTTP: { path: ['serve', 'http'], kind: 'list' },
  UNCLOUD_METADATA_ADMIN: { path: ['serve', 'admin'], kind: 'list' },
  UNCLOUD_METADATA_UPSTREAMS: { path: ['serve', 'upstreams'], kind: 'list' },
  UNCLOUD_METADATA_TRUST_UPSTREAM_AD: { path: ['serve', 'trustUpstreamAd'], kind: 'boolean' },
  UNCLOUD_METADATA_TTL: { path: ['serve', 'ttl'], kind: 'number' },
  UNCLOUD_METADATA_BARE_METADATA: { path: ['serve', 'bareMetadata'], kind: 'boolean' },
  UNCLOUD_METADATA_RECURSION_ACL: { path: ['serve', 'recursionAcl'], kind: 'list' },
  UNCLOUD_METADATA_TOKEN_SECRET_FILE: { path: ['serve', 'tokenSecretFile'], kind: 'string' },
  UNCLOUD_METADATA_TOKEN_HOP_LIMIT: { path: ['serve', 'tokenHopLimit'], kind: 'number' },
  UNCLOUD_METADATA_WORKERS: { path: ['serve', 'workers'], kind: 'number' },
  UNCLOUD_METADATA_IDENTITY_KEY_FILE: { path: ['identity', 'keyFile'], kind: 'string' },
  UNCLOUD_METADATA_IDENTITY_ISSUER: { path: ['identity', 'issuer'], kind: 'string' },
  UNCLOUD_METADATA_HOST: { path: ['agent', 'host'], kind: 'string' },
  UNCLOUD_METADATA_STATE_DIR: { path: ['agent', 'stateDir'], kind: 'string' },
  UNCLOUD_METADATA_ACCEL: { path: ['agent', 'accel'], kind: 'string' },
  UNCLOUD_METADATA_QEMU: { path: ['agent', 'qemu'], kind: 'string' },
};

export function setPath(layer: Layer, path: string[], value: unknown): void {
  let node = layer;
  for (const p of path.slice(0, -1)) node = (node[p] ??= {}) as Layer;
  node[path[path.length - 1]] = value;
}

function envLayer(env: NodeJS.ProcessEnv): Layer {
  const layer: Layer = {};
  for (const [name, { path, kind }] of Object.entries(ENVIRONMENT)) {
    const raw = env[name];
    if (raw === undefined || raw === '') continue;
    let value: unknown = raw;
    if (kind === 'list') value = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (kind === 'number') {
      value = Number(raw);
      if (!Number.isFinite(value)) throw new ConfigError(`${name}: "${raw}" is not a number`);
    }
    if (kind === 'boolean') {
      if (!/^(true|false|1|0|yes|no)$/i.test(raw)) throw new ConfigError(`${name}: "${raw}" is not true or false`);
      value = /^(true|1|yes)$/i.test(raw);
    }
    setPath(layer, path, value);
  }
  return layer;
}

function fileLayer(path: string): Layer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${path}: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${path}: the top level must be a mapping`);
  return doc as Layer;
}

function merge(base: Layer, over: Layer): Layer {
  const out: Layer = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' && !Array.isArray(out[k])
      ? merge(out[k] as Layer, v as Layer)
      : v;
  }
  return out;
}

export function validateConfig(layer: Layer, source: string): Config {
  const r = ConfigSchema.safeParse(layer);
  if (!r.success) {
    const issue = r.error.issues[0];
    const key = issue.path.join('.') || '(top level)';
    const msg = issue.code === 'unrecognized_keys' ? `unknown key "${issue.keys.join('", "')}"` : issue.message;
    throw new ConfigError(`${source}: ${key}: ${msg}`);
  }
  return r.data;
}

/** `flags` is a partial config built from the command line (only what was given). */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; flags?: Layer }): Config {
  const file = opts.file ? fileLayer(opts.file) : {};
  if (opts.file) validateConfig(file, opts.file);
  const env = envLayer(opts.env ?? process.env);
  return validateConfig(merge(merge(file, env), opts.flags ?? {}), 'config');
}

/**
 * A config layer from parsed command-line flags: `paths` maps a flag's name to its config path;
 * flags that were not given are left out, so they do not override the environment or the file.
 */
export function flagLayer(flags: Record<string, unknown>, paths: Record<string, string[]>): Layer {
  const layer: Layer = {};
  for (const [flag, path] of Object.entries(paths)) if (flags[flag] !== undefined) setPath(layer, path, flags[flag]);
  return layer;
}

/** Loads the config for a daemon command, turning config errors into the caller's error type. */
export function loadConfigOr<E extends Error>(opts: Parameters<typeof loadConfig>[0], toError: (message: string) => E): Config {
  try {
    return loadConfig(opts);
  } catch (err) {
    if (err instanceof ConfigError) throw toError(err.message);
    throw err;
  }
}
