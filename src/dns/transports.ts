// The UDP socket: hot path first, then the full path. TCP is in tcp.ts.
import { createSocket, type Socket } from 'node:dgram';
import type { Logger } from 'pino';
import type { Responder } from './responder.js';

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

function swallow(): void { /* a send to a vanished client is not our problem */ }
