// The one storage interface both backends implement: a revisioned key-value space with
// compare-and-swap transactions, shaped after etcd's so the file store keeps the same semantics.

export interface KvEntry {
  key: string;
  value: string;
  modRevision: number;
  createRevision: number;
}

/** `modRevision: 0` means "the key must not exist". */
export interface KvCompare {
  key: string;
  modRevision: number;
}

export interface KvTxn {
  compares: KvCompare[];
  puts: { key: string; value: string; lease?: string }[];
  deletes: string[];
}

export interface KvTxnResult {
  succeeded: boolean;
  revision: number;
}

export interface Kv {
  readonly description: string;
  get(key: string): Promise<KvEntry | undefined>;
  /** Every key under `prefix` at one revision. */
  range(prefix: string): Promise<{ entries: KvEntry[]; revision: number }>;
  txn(txn: KvTxn): Promise<KvTxnResult>;
  close(): Promise<void>;
}

/** A raw change as a source delivers it; `value` undefined is a delete. */
export interface KvChange {
  key: string;
  value: string | undefined;
  modRevision: number;
}

/** Where a source delivers what it reads. `reset` replaces everything atomically. */
export interface StateSink {
  reset(entries: KvEntry[], revision: number): void;
  apply(changes: KvChange[], revision: number): void;
}

export interface SourceHealth {
  /** The last load finished and the source follows changes. */
  live: boolean;
  /** The store answered recently. */
  connected: boolean;
  revision: number;
  /** The store's own revision at the last probe (etcd's is cluster-wide, so it counts writes outside our prefix too). */
  storeRevision?: number;
  reloads: number;
  reconnects: number;
  lastError?: string;
}

/** Loads a prefix once, then follows it; on loss it keeps the sink's last good state. */
export interface StateSource {
  start(sink: StateSink): Promise<void>;
  health(): SourceHealth;
  close(): Promise<void>;
}

export class StoreUnavailableError extends Error {
  constructor(what: string, cause: unknown) {
    super(`store unavailable (${what}): ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/** The store answered, but our credentials may not read this range: a configuration error, not an outage. */
export class StoreAccessError extends Error {
  constructor(store: string, readonly range: string, cause: unknown) {
    super(`${store} refused to let this process read ${range} (${(cause instanceof Error ? cause.message : String(cause)).replace(/^store unavailable \([^)]*\): /, '')}): grant it in the etcd role`);
  }
}
