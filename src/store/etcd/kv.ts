// Kv over etcd: explicit revisions, ranges read in pages at one revision, transactions as-is.
//
// Page size: etcd 3.4 walks its index over the whole rest of the range for every page (to count
// it), so a range of n keys read in pages of p costs O(n²/p): 300,000 keys in pages of 2,000 took
// 33 s here, in pages sized to ~8 MiB under 2 s. So the first page is small, and the next ones are
// sized from the bytes seen so far, halving when a page overflows the client's message limit.
import type { Etcd3 } from 'etcd3';
import type { Kv, KvEntry, KvTxn, KvTxnResult } from '../kv.js';
import { StoreUnavailableError } from '../kv.js';
import { StoreError } from '../errors.js';
import { createEtcdClient, type EtcdOptions } from './client.js';

const FIRST_PAGE = 1000;
const MAX_PAGE = 100_000;
const PAGE_BYTES = 8 << 20;

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

  /**
   * Every key under `prefix` at one revision, but those under the `skip` sub-prefixes (whole
   * sub-ranges left unread, so etcd never walks them).
   */
  async range(prefix: string, skip: string[] = []): Promise<{ entries: KvEntry[]; revision: number }> {
    const entries: KvEntry[] = [];
    let revision = 0;
    let from: Buffer = Buffer.from(prefix);
    for (const dir of [...skip].sort()) {
      const to = Buffer.from(dir);
      if (Buffer.compare(from, to) < 0) revision = await this.rangeInto(entries, from, to, revision);
      const after = prefixEnd(dir);
      if (Buffer.compare(after, from) > 0) from = after;
    }
    revision = await this.rangeInto(entries, from, prefixEnd(prefix), revision);
    return { entries, revision };
  }

  /**
   * Appends every entry of [from, end) at `revision` (0: the current one) to `entries`, in key
   * order; returns the revision read at.
   */
  async rangeInto(entries: KvEntry[], from: Buffer, end: Buffer, revision: number): Promise<number> {
    let limit = FIRST_PAGE;
    let bytes = 0;
    let count = 0;
    for (;;) {
      let res;
      try {
        res = await this.call('range', () =>
          this.client.kv.range({ key: from, range_end: end, limit, revision: revision || undefined }));
      } catch (err) {
        // A page over the client's message limit: smaller pages, down to one key.
        if (limit > 1 && /RESOURCE_EXHAUSTED|larger than max/i.test((err as Error).message)) {
          limit = Math.max(1, limit >> 2);
          continue;
        }
        throw err;
      }
      if (!revision) revision = Number(res.header.revision);
      for (const kv of res.kvs) {
        const e = toEntry(kv as RawKv);
        bytes += kv.key.length + kv.value.length;
        entries.push(e);
      }
      count += res.kvs.length;
      if (!res.more || res.kvs.length === 0) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
      limit = Math.max(FIRST_PAGE, Math.min(MAX_PAGE, Math.floor(PAGE_BYTES / Math.max(1, bytes / count))));
    }
    return revision;
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
      // A change that must touch more records at once than etcd allows (its copies on many hosts,
      // in many networks): the store is fine, the request is too big. Nothing was written.
      if (/too many operations in txn request/.test((err as Error).message)) {
        throw new StoreError('invalid', `${this.description}: this change must update more records in one transaction than etcd allows (--max-txn-ops, default 128); nothing was written: raise --max-txn-ops on the etcd members`);
      }
      throw new StoreUnavailableError(`${this.description} ${what}`, err);
    }
  }
}
