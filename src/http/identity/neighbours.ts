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
  /** A miss re-reads the table only if the snapshot is older than this (ms), so misses cannot flood `ip`. */
  missRefreshMs?: number;
  log?: Logger;
  /** The command, for tests and odd hosts. */
  command?: [string, ...string[]];
}

/** Reads the table with `ip -j neigh show`, cached briefly; one read in flight at a time. */
export class IpNeighbourTable implements NeighbourTable {
  private table = new Map<string, string>();
  private readAt = -Infinity;
  private inFlight?: Promise<void>;
  private readonly maxAgeMs: number;
  private readonly missRefreshMs: number;
  private readonly command: [string, ...string[]];

  constructor(private readonly opts: IpNeighbourOptions = {}) {
    this.maxAgeMs = opts.maxAgeMs ?? 2000;
    this.missRefreshMs = opts.missRefreshMs ?? 100;
    this.command = opts.command ?? ['ip', '-j', 'neigh', 'show'];
  }

  async macFor(address: string): Promise<string | undefined> {
    const age = Date.now() - this.readAt;
    const hit = this.table.get(address);
    if (hit && age < this.maxAgeMs) return hit;
    if (!hit && age < this.missRefreshMs) return undefined;
    await this.refresh();
    return this.table.get(address);
  }

  private refresh(): Promise<void> {
    this.inFlight ??= new Promise<void>((resolve) => {
      const [cmd, ...args] = this.command;
      execFile(cmd, args, { timeout: 2000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout) => {
        if (err) this.opts.log?.warn({ err: err.message }, 'cannot read the neighbour table');
        else this.table = parseIpNeigh(stdout);
        this.readAt = Date.now();
        this.inFlight = undefined;
        resolve();
      });
    });
    return this.inFlight;
  }
}
