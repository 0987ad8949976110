// Turns a store URL into a Kv and a StateSource: etcd://HOST:PORT[,HOST:PORT] or file:PATH.
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Kv, StateSource } from './kv.js';
import { Keys, DEFAULT_PREFIX, type KeyRange } from './keys.js';
import { EtcdKv } from './etcd/kv.js';
import { EtcdSource } from './etcd/source.js';
import type { EtcdTls } from './etcd/client.js';
import { FileKv } from './file/kv.js';
import { FileSource } from './file/source.js';

export interface StoreOptions {
  prefix?: string;
  tls?: EtcdTls;
}

export interface OpenedStore {
  kv: Kv;
  keys: Keys;
  url: string;
  /** Follows `ranges` (default: what an appliance serving every network reads). */
  source(log: Logger, ranges?: KeyRange[]): StateSource;
}

export class StoreUrlError extends Error {}

export function parseStoreUrl(url: string): { kind: 'etcd'; endpoints: string[] } | { kind: 'file'; path: string } {
  if (url.startsWith('etcd://') || url.startsWith('etcds://')) {
    const endpoints = url.replace(/^etcds?:\/\//, '').split(',').map((s) => s.trim()).filter(Boolean);
    if (!endpoints.length || endpoints.some((e) => !/^[A-Za-z0-9.\-[\]:]+:\d+$/.test(e))) {
      throw new StoreUrlError(`store URL "${url}" must be etcd://HOST:PORT[,HOST:PORT]`);
    }
    return { kind: 'etcd', endpoints };
  }
  if (url.startsWith('file:')) {
    const path = url.slice('file:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path) throw new StoreUrlError(`store URL "${url}" must be file:PATH`);
    return { kind: 'file', path: resolve(path) };
  }
  throw new StoreUrlError(`store URL "${url}" must start with etcd:// or file:`);
}

export function openStore(url: string, opts: StoreOptions = {}): OpenedStore {
  const parsed = parseStoreUrl(url);
  const keys = new Keys(opts.prefix ?? DEFAULT_PREFIX);
  if (parsed.kind === 'etcd') {
    const kv = new EtcdKv({ endpoints: parsed.endpoints, tls: opts.tls });
    return { kv, keys, url, source: (log, ranges) => new EtcdSource(kv, { ranges: ranges ?? keys.applianceRanges(), log }) };
  }
  const kv = new FileKv(parsed.path);
  return { kv, keys, url, source: (log, ranges) => new FileSource(parsed.path, ranges ?? keys.applianceRanges(), log) };
}
