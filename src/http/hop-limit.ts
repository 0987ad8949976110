// The IP TTL / IPv6 hop limit of one TCP connection, as AWS's http-put-response-hop-limit: an
// IMDSv2 token leaves with hop limit 1, so a router (or a container bridge, or a proxy host one
// hop away) drops it instead of handing it on. Node has no per-socket TTL for TCP, so this calls
// libc's setsockopt on the socket's descriptor through koffi (a maintained FFI with prebuilt
// binaries). The limit is never lowered back on that connection: the kernel builds the IP header
// when a segment is (re)transmitted, so restoring it could send a retransmitted token further.
import type { Socket } from 'node:net';
import { libcFunction } from '../libc.js';

const IPPROTO_IP = 0;
const IP_TTL = 2;
const IPPROTO_IPV6 = 41;
const IPV6_UNICAST_HOPS = 16;

type SetSockOpt = (fd: number, level: number, name: number, value: number[], len: number) => number;
let setsockopt: SetSockOpt | undefined;

/** Loads the libc binding once; throws (at start-up) on a platform where it cannot. */
export function loadHopLimit(): void {
  if (setsockopt) return;
  try {
    setsockopt = libcFunction<SetSockOpt>('int setsockopt(int fd, int level, int name, const int *value, uint32_t len)');
  } catch (err) {
    throw new Error(`cannot reach libc's setsockopt through koffi, needed to hop-limit IMDSv2 tokens: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Sets the hop limit of packets this socket sends from now on. An IPv6 socket gets both
 * options: IPv4-mapped peers of a dual-stack listener use IP_TTL. False when it could not.
 */
export function setHopLimit(socket: Socket, hops: number): boolean {
  loadHopLimit();
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return false;
  const v6 = socket.localAddress?.includes(':') ?? false;
  const ttl = setsockopt!(fd, IPPROTO_IP, IP_TTL, [hops], 4) === 0;
  return v6 ? setsockopt!(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, [hops], 4) === 0 && ttl : ttl;
}
