// DNS over TCP (RFC 1035 two-byte length framing, RFC 7766 connection handling):
// - several queries per connection, read in order; at most TCP_MAX_INFLIGHT answered at once,
//   beyond that the connection stops being read (flow control) instead of being dropped, and it
//   also stops while the client is not reading our answers;
// - a connection is idle when no well-formed query has been answered on it for TCP_IDLE_MS:
//   empty frames, garbage or a trickle of bytes do not keep it open;
// - connections are bounded per client (an IPv4 address, an IPv6 /64) and in all; at either bound
//   the longest-idle connection (the client's own, or anyone's) is closed to make room (RFC 7766
//   §6.2.3), so one host holding many idle connections cannot shut others (or itself) out.
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { parseAddress } from '../model/ip.js';
import type { Responder } from './responder.js';
import { RCODE } from './wire.js';

export interface TcpLimits {
  idleMs: number;
  maxConnections: number;
  maxPerClient: number;
  maxInflight: number;
}

export const TCP_DEFAULTS: TcpLimits = { idleMs: 10_000, maxConnections: 1024, maxPerClient: 32, maxInflight: 64 };

export interface TcpListener {
  server: Server;
  connections: Set<Socket>;
}

interface Conn {
  socket: Socket;
  client: string;
  inflight: number;
  /** Last time a well-formed query was answered (or the connection opened). */
  usefulAt: number;
}

/** The unit connections are counted by: the address for IPv4, the /64 for IPv6. */
export function clientKey(address: string): string {
  const a = parseAddress(address);
  if (!a) return address;
  if (a.kind() === 'ipv4') return a.toString();
  return a.toByteArray().slice(0, 8).map((b) => b.toString(16).padStart(2, '0')).join('');
}

export async function listenTcp(
  host: string, port: number, ipv6Only: boolean, responder: Responder, log: Logger, limits: TcpLimits = TCP_DEFAULTS,
): Promise<TcpListener> {
  const connections = new Set<Socket>();
  /** Open connections, least recently useful first (a Map keeps insertion order; touch re-inserts). */
  const byUse = new Map<Socket, Conn>();
  const perClient = new Map<string, number>();

  const touch = (c: Conn) => {
    c.usefulAt = Date.now();
    byUse.delete(c.socket);
    byUse.set(c.socket, c);
  };
  /** Closes the least recently useful connection (of `client`, if given) with nothing in flight; false when there is none. */
  const evictIdle = (client?: string): boolean => {
    for (const c of byUse.values()) {
      if (c.inflight === 0 && (client === undefined || c.client === client)) {
        c.socket.destroy();
        forget(c);
        return true;
      }
    }
    return false;
  };
  const forget = (c: Conn) => {
    if (!byUse.delete(c.socket)) return;
    connections.delete(c.socket);
    const n = (perClient.get(c.client) ?? 1) - 1;
    if (n <= 0) perClient.delete(c.client);
    else perClient.set(c.client, n);
  };

  const server = createServer({ noDelay: true }, (socket) => {
    const address = socket.remoteAddress ?? '';
    const client = clientKey(address);
    socket.on('error', () => socket.destroy());
    // A client at its bound gives up its own longest-idle connection (it most likely abandoned it);
    // at the total bound, the longest-idle of anyone's goes. Only busy connections refuse a new one.
    if (((perClient.get(client) ?? 0) >= limits.maxPerClient && !evictIdle(client)) || (byUse.size >= limits.maxConnections && !evictIdle())) {
      socket.destroy();
      return;
    }
    const c: Conn = { socket, client, inflight: 0, usefulAt: Date.now() };
    byUse.set(socket, c);
    connections.add(socket);
    perClient.set(client, (perClient.get(client) ?? 0) + 1);
    socket.on('close', () => forget(c));

    // Our own idle timer: socket.setTimeout would be reset by any bytes at all.
    let timer: NodeJS.Timeout;
    const arm = (ms: number) => {
      timer = setTimeout(() => {
        const left = c.usefulAt + limits.idleMs - Date.now();
        if (c.inflight > 0 || left > 0) arm(Math.max(left, 100));
        else socket.destroy();
      }, ms);
      timer.unref();
    };
    arm(limits.idleMs);
    socket.on('close', () => clearTimeout(timer));

    let pending: Buffer = Buffer.alloc(0);
    let waitingForDrain = false;
    const flow = () => {
      if (socket.destroyed) return;
      if (c.inflight >= limits.maxInflight || waitingForDrain) socket.pause();
      else socket.resume();
    };
    const readFrames = () => {
      while (pending.length >= 2 && c.inflight < limits.maxInflight && !waitingForDrain && !socket.destroyed) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = Buffer.from(pending.subarray(2, 2 + len));
        pending = pending.subarray(2 + len);
        if (len === 0) continue; // an empty frame: nothing to answer, and not a sign of life
        c.inflight++;
        responder.respond(msg, address, 'tcp').then((out) => {
          c.inflight--;
          if (out && !socket.destroyed) {
            // Only a query we could parse and answer counts as use (FORMERR answers garbage).
            if ((out[3] & 0xf) !== RCODE.FORMERR) touch(c);
            const frame = Buffer.allocUnsafe(2 + out.length);
            frame.writeUInt16BE(out.length, 0);
            out.copy(frame, 2);
            if (!socket.write(frame)) {
              waitingForDrain = true;
              socket.once('drain', () => {
                waitingForDrain = false;
                readFrames();
                flow();
              });
            }
          }
          readFrames();
          flow();
        }, () => {
          c.inflight--;
          readFrames();
          flow();
        });
      }
      flow();
    };
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      readFrames();
    });
  });
  server.on('error', (err) => log.warn({ err: err.message, host, port }, 'dns tcp server error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, ipv6Only: host.includes(':') && ipv6Only }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return { server, connections };
}
