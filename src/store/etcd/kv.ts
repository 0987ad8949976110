// Kv over etcd: explicit revisions, ranges read in pages at one revision, transactions as-is.
import type { Etcd3 } from 'etcd3';
import type { Kv, KvEntry, KvTxn, KvTxnResult } from '../kv.js';
import { StoreUnavailableError } from '../kv.js';
import { createEtcdClient, type EtcdOptions } from './client.js';

const PAGE = 2000;

/** The end of a prefix range: the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i] < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i]++;
      return end;
    }
  }
  return Buffer.from([0]);
}

interface RawKv { key: Buffer; value: Buffer; mod_revision: string; create_revision: string }

export function toEntry(kv: RawKv): KvEntry {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
  };
}

export class EtcdKv implements Kv {
  readonly client: Etcd3;
  readonly description: string;

  constructor(opts: EtcdOptions, client?: Etcd3) {
    this.client = client ?? createEtcdClient(opts);
    this.description = `etcd://${opts.endpoints.join(',')}`;
  }

  async get(key: string): Promise<KvEntry | undefined> {
    const res = await this.call('get', () => this.client.kv.range({ key: Buffer.from(key) }));
    return res.kvs.length ? toEntry(res.kvs[0] as RawKv) : undefined;
  }

  async range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    const end = prefixEnd(prefix);
    const entries: KvEntry[] = [];
    let from = Buffer.from(prefix);
    let revision = 0;
    for (;;) {
      const res = await this.call('range', () =>
        this.client.kv.range({ key: from, range_end: end, limit: PAGE, revision: revision || undefined }));
      if (!revision) revision = Number(res.header.revision);
      for (const kv of res.kvs) entries.push(toEntry(kv as RawKv));
      if (!res.more || res.kvs.length === 0) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
    return { entries, revision };
  }

  async txn(t: KvTxn): Promise<KvTxnResult> {
    const res = await this.call('txn', () => this.client.kv.txn({
      compare: t.compares.map((c) => c.modRevision === 0
        ? { key: Buffer.from(c.key), target: 'Create', result: 'Equal', create_revision: 0 }
        : { key: Buffer.from(c.key), target: 'Mod', result: 'Equal', mod_revision: c.modRevision }),
      success: [
        ...t.puts.map((p) => ({ request_put: { key: Buffer.from(p.key), value: Buffer.from(p.value), lease: p.lease } })),
        ...t.deletes.map((k) => ({ request_delete_range: { key: Buffer.from(k) } })),
      ],
      failure: [],
    }));
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async close(): Promise<void> {
    this.client.close();
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new StoreUnavailableError(`${this.description} ${what}`, err);
    }
  }
}
