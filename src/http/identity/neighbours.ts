// The host's neighbour table (IPv6 NDP and IPv4 ARP): which MAC last spoke from an address. It
// identifies guests whose address carries no MAC (stable-privacy, temporary, or static ones).
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';
import { normalizeAddress } from '../../model/ip.js';
import { normalizeMac } from '../../model/mac.js';

export interface NeighbourTable {
  /** The MAC the host's kernel has for this (canonical) address, if any. */
  macFor(address: string): Promise<string | undefined>;
}

interface IpNeigh { dst?: string; lladdr?: string; state?: string[] }

/** Parses `ip -j neigh show` output into address -> MAC, skipping entries without a link address. */
export function parseIpNeigh(json: string): Map<string, string> {
  const table = new Map<string, string>();
  let rows: unknown;
  try {
    rows = JSON.parse(json);
  } catch {
    return table;
  }
  if (!Array.isArray(rows)) return table;
  for (const r of rows as IpNeigh[]) {
    if (!r || typeof r.dst !== 'string' || typeof r.lladdr !== 'string') continue;
    if (r.state?.some((s) => s === 'FAILED' || s === 'INCOMPLETE')) continue;
    const addr = normalizeAddress(r.dst);
    const mac = normalizeMac(r.lladdr);
    if (addr && mac) table.set(addr, mac);
  }
  return table;
}

export interface IpNeighbourOptions {
  /** A snapshot younger than this answers hits without re-reading (ms). */
  maxAgeMs?: number;
  /** Reads start at most this often (ms), however many misses ask, so misses cannot flood `ip`. */
  minIntervalMs?: number;
  log?: Logger;
  /** The command, for tests and odd hosts. */
  command?: [string, ...string[]];
}

/**
 * Reads the table with `ip -j neigh show`. A hit in a recent snapshot answers at once; a miss
 * waits for a snapshot that started after it asked (the kernel learnt the guest's MAC during
 * the TCP handshake, so an older snapshot may simply predate it), sharing reads between askers.
 */
export class IpNeighbourTable implements NeighbourTable {
  private table = new Map<string, string>();
  private readAt = -Infinity;
  private lastStart = -Infinity;
  private pending?: { start: number; done: Promise<void> };
  private readonly maxAgeMs: number;
  private readonly minIntervalMs: number;
  private readonly command: [string, ...string[]];

  constructor(private readonly opts: IpNeighbourOptions = {}) {
    this.maxAgeMs = opts.maxAgeMs ?? 2000;
    this.minIntervalMs = opts.minIntervalMs ?? 100;
    this.command = opts.command ?? ['ip', '-j', 'neigh', 'show'];
  }

  async macFor(address: string): Promise<string | undefined> {
    const asked = Date.now();
    const hit = this.table.get(address);
    if (hit && asked - this.readAt < this.maxAgeMs) return hit;
    await this.snapshotSince(asked);
    return this.table.get(address);
  }

  private async snapshotSince(asked: number): Promise<void> {
    for (;;) {
      if (this.lastStart >= asked && !this.pending) return;
      if (this.pending) {
        const p = this.pending;
        await p.done;
        if (p.start >= asked) return;
        continue;
      }
      const start = Math.max(Date.now(), this.lastStart + this.minIntervalMs);
      const done = new Promise<void>((r) => setTimeout(r, start - Date.now())).then(() => this.read()).finally(() => {
        this.lastStart = start;
        this.pending = undefined;
      });
      this.pending = { start, done };
    }
  }

  private read(): Promise<void> {
    return new Promise<void>((resolve) => {
      const [cmd, ...args] = this.command;
      execFile(cmd, args, { timeout: 2000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
        if (err) this.opts.log?.warn({ err: err.message }, 'cannot read the neighbour table');
        else this.table = parseIpNeigh(stdout);
        this.readAt = Date.now();
        resolve();
      });
    });
  }
}
