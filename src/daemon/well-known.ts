// The addresses clouds made well known for metadata, served beside each network's own:
// fe80::a9fe:a9fe on the network's bridge (current cloud-init's OpenStack and Hetzner datasources
// try it first, as http://[fe80::a9fe:a9fe%25<iface>]) and 169.254.169.254 where a network has
// IPv4. The appliance listens on them only where the host already holds them (the operator or
// the bridge's setup adds them), so a missing one is a log line, not a failed start.
import { networkInterfaces } from 'node:os';
import type { Logger } from 'pino';
import type { NetworkView } from '../registry/registry.js';
import { bridgeName } from '../model/bridge.js';

export const LINK_LOCAL6 = 'fe80::a9fe:a9fe';
export const LINK_LOCAL4 = '169.254.169.254';

type Interfaces = ReturnType<typeof networkInterfaces>;

export function wellKnownListens(networks: NetworkView[], port: number, log: Logger, ifs: Interfaces = networkInterfaces()): { host: string; port: number }[] {
  const out: { host: string; port: number }[] = [];
  for (const n of networks) {
    const bridge = bridgeName(n.network);
    if (ifs[bridge]?.some((a) => a.family === 'IPv6' && a.address === LINK_LOCAL6)) out.push({ host: `${LINK_LOCAL6}%${bridge}`, port });
    else log.info({ network: n.network.name, bridge }, `${LINK_LOCAL6} is not on the bridge: not served there (ip -6 addr add ${LINK_LOCAL6}/64 dev ${bridge})`);
  }
  if (networks.some((n) => n.network.prefix4)) {
    if (Object.values(ifs).some((list) => list?.some((a) => a.address === LINK_LOCAL4))) out.push({ host: LINK_LOCAL4, port });
    else log.info(`${LINK_LOCAL4} is on no interface: not served (ip addr add ${LINK_LOCAL4}/32 dev <bridge>)`);
  }
  return out;
}
