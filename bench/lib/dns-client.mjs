// A minimal DNS client for latency samples and propagation polling: one UDP socket, one query
// in flight, answers matched by ID, bounded by a timeout.
import { createSocket } from 'node:dgram';

export function encodeQuery(id, name, type = 28) {
  const labels = name.replace(/\.$/, '').split('.');
  const parts = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l));
  parts.push(Buffer.from([0, type >> 8, type & 0xff, 0, 1]));
  return Buffer.concat(parts);
}

export class DnsClient {
  constructor(host, port) {
    this.host = host;
    this.port = port;
    this.id = 1;
    this.pending = undefined;
    this.sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    this.sock.on('message', (msg) => {
      const p = this.pending;
      if (!p || msg.readUInt16BE(0) !== p.id) return;
      this.pending = undefined;
      clearTimeout(p.timer);
      p.resolve({ rcode: msg[3] & 0x0f, answers: msg.readUInt16BE(6) });
    });
  }

  /** Resolves with {rcode, answers}, or undefined after `timeoutMs`. */
  query(name, type = 28, timeoutMs = 1000) {
    const id = (this.id = (this.id % 65535) + 1);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.pending = undefined; resolve(undefined); }, timeoutMs);
      this.pending = { id, resolve, timer };
      this.sock.send(encodeQuery(id, name, type), this.port, this.host);
    });
  }

  close() { this.sock.close(); }
}
