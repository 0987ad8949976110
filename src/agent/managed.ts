// What the agent keeps about one VM it runs: where its files and tap are, what state it reported,
// and its failure backoff.
import type { VmState } from '../model/schema.js';

export interface Managed {
  key: string;
  network: string;
  name: string;
  dir: string;
  tap: string;
  pid?: number;
  state: VmState['state'];
  since: string;
  restarts: number;
  lastError?: string;
  /** Consecutive failures, for the backoff. */
  failures: number;
  notBefore: number;
  startedAt: number;
}

export const MAX_BACKOFF_MS = 60_000;

/** The delay before the next start after `failures` consecutive failures: doubling, capped. */
export function backoffDelay(baseMs: number, failures: number): number {
  return Math.min(baseMs * 2 ** (failures - 1), MAX_BACKOFF_MS);
}
