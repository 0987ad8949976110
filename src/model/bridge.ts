// The host bridge of a network: named in the record, or "br-<name>" cut to Linux's 15 characters.
// The agent creates it; the HTTP service trusts link-local sources only when they arrive on it.
import type { Network } from './schema.js';

export const IFNAMSIZ = 15;

export function bridgeName(network: Pick<Network, 'bridge' | 'name'>): string {
  return network.bridge ?? `br-${network.name}`.slice(0, IFNAMSIZ);
}
