// Sockets: UDP (hot path first, then the full path) and TCP with RFC 1035 two-byte length
// framing (RFC 7766: several queries per connection, answers possibly out of order).
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server, type Socket as TcpSocket } from 'node:net';
import type { Logger } from 'pino';
import type { Responder } from './responder.js';

const TCP_IDLE_MS = 10_000;
const TCP_MAX_CONNECTIONS = 512;
const TCP_MAX_INFLIGHT = 64;

export async function listenUdp(host: string, port: number, ipv6Only: boolean, responder: Responder, log: Logger): Promise<Socket> {
  const v6 = host.includes(':');
  const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 && ipv6Only, recvBufferSize: 4 << 20 });
  let closed = false;
  sock.on('close', () => (closed = true));
  sock.on('message', (msg, rinfo) => {
    const hit = responder.fast(msg, rinfo.address);
    if (hit) {
      // No callback: a failed send surfaces as the socket's 'error' event (logged below).
      sock.send(hit, rinfo.port, rinfo.address);
      return;
    }
    responder.respond(msg, rinfo.address, 'udp').then((out) => {
      // The socket may have closed while a forward was pending: sending would throw.
      if (!out || closed) return;
      try {
        sock.send(out, rinfo.port, rinfo.address, swallow);
      } catch { /* closed under us */ }
    }, swallow);
  });
  sock.on('error', (err) => log.warn({ err: err.message, host, port }, 'dns udp socket error'));
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    // Not exclusive: under `serve --workers` (node:cluster) the workers share one socket handle.
    sock.bind({ port, address: host, exclusive: false }, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return sock;
}

export async function listenTcp(host: string, port: number, ipv6Only: boolean, responder: Responder, log: Logger): Promise<{ server: Server; connections: Set<TcpSocket> }> {
  const connections = new Set<TcpSocket>();
  const server = createServer({ noDelay: true }, (conn) => {
    if (connections.size >= TCP_MAX_CONNECTIONS) {
      conn.destroy();
      return;
    }
    connections.add(conn);
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on('close', () => connections.delete(conn));
    conn.on('error', () => conn.destroy());
    const address = conn.remoteAddress ?? '';
    let pending = Buffer.alloc(0);
    let inflight = 0;
    conn.on('data', (chunk) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= 2) {
        const len = pending.readUInt16BE(0);
        if (pending.length < 2 + len) break;
        const msg = Buffer.from(pending.subarray(2, 2 + len));
        pending = pending.subarray(2 + len);
        if (++inflight > TCP_MAX_INFLIGHT) {
          conn.destroy();
          return;
        }
        responder.respond(msg, address, 'tcp').then((out) => {
          inflight--;
          if (!out || conn.destroyed) return;
          const frame = Buffer.allocUnsafe(2 + out.length);
          frame.writeUInt16BE(out.length, 0);
          out.copy(frame, 2);
          conn.write(frame);
        }, () => inflight--);
      }
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

function swallow(): void { /* a send to a vanished client is not our problem */ }
