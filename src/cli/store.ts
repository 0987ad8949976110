// Which store a command talks to: --store, else UNCLOUD_METADATA_STORE (and --prefix / TLS env).
import { openStore, parseStoreUrl, StoreUrlError, type OpenedStore } from '../store/open.js';
import { StoreWriter } from '../store/writer.js';
import { flagLayer, loadConfigOr } from '../config/load.js';
import { CliError } from './errors.js';

export interface StoreFlags {
  store?: string;
  prefix?: string;
  config?: string;
}

export function storeFromFlags(flags: StoreFlags): { store: OpenedStore; writer: StoreWriter } {
  const cfg = loadConfigOr({ file: flags.config, flags: flagLayer({ ...flags }, { store: ['store', 'url'], prefix: ['store', 'prefix'] }) }, (m) => new CliError(m));
  const url = cfg.store.url;
  if (!url) throw new CliError('no store given: use --store etcd://HOST:PORT or --store file:PATH, or set UNCLOUD_METADATA_STORE');
  try {
    parseStoreUrl(url);
  } catch (err) {
    if (err instanceof StoreUrlError) throw new CliError(err.message);
    throw err;
  }
  const store = openStore(url, { prefix: cfg.store.prefix, tls: cfg.store.tls });
  return { store, writer: new StoreWriter(store.kv, store.keys) };
}

/** Opens the store named by the flags, runs `fn`, and always closes the connection. */
export async function withWriter(flags: StoreFlags, fn: (writer: StoreWriter, store: OpenedStore) => Promise<void>): Promise<void> {
  const { store, writer } = storeFromFlags(flags);
  try {
    await fn(writer, store);
  } finally {
    await store.kv.close();
  }
}
