// Per-test stores on the run's etcd, each under its own prefix so test files never collide.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { openStore, type OpenedStore } from '../../src/store/open.js';
import { StoreWriter } from '../../src/store/writer.js';
import { Registry } from '../../src/registry/registry.js';
import { silentLogger } from '../../src/log.js';

export function etcdEndpoint(): string {
  return inject('etcdEndpoint');
}

export function uniquePrefix(): string {
  return `/test-${randomBytes(5).toString('hex')}`;
}

export interface TestStore {
  store: OpenedStore;
  writer: StoreWriter;
  prefix: string;
  url: string;
  /** A registry following this store as an appliance serving `networks` (default all) does, started and loaded. */
  follow(networks?: string[]): Promise<{ registry: Registry; close(): Promise<void> }>;
  close(): Promise<void>;
}

export function etcdTestStore(): TestStore {
  const prefix = uniquePrefix();
  const url = `etcd://${etcdEndpoint()}`;
  const store = openStore(url, { prefix });
  const closers: (() => Promise<void>)[] = [];
  return {
    store, prefix, url,
    writer: new StoreWriter(store.kv, store.keys),
    async follow(networks) {
      const registry = new Registry({ prefix, networks, log: silentLogger() });
      const source = store.source(silentLogger(), store.keys.applianceRanges(networks));
      await source.start(registry);
      const close = () => source.close();
      closers.push(close);
      return { registry, close };
    },
    async close() {
      for (const c of closers) await c();
      await store.kv.close();
    },
  };
}

/** Polls `check` until it returns a truthy value (for watch propagation), or throws after `ms`. */
export async function eventually<T>(check: () => T | Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGvN7Ajs2mYH+Iu0GyXnBrqQq03W7nVlz1YqvqZ3GA6j alice@laptop';
