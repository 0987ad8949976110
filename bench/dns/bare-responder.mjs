// The ceiling: a bare Node dgram socket answering every packet with one fixed, precomputed
// answer (only the ID patched). Nothing Node-based can answer faster than this.
// Usage: node bare-responder.mjs PORT
import { createSocket } from 'node:dgram';

const port = Number(process.argv[2]);
const name = Buffer.from([8, ...Buffer.from('metadata'), 3, ...Buffer.from('lab'), 7, ...Buffer.from('example'), 0]);
const answer = Buffer.concat([
  Buffer.from([0, 0, 0x85, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]),
  name, Buffer.from([0, 28, 0, 1]),
  Buffer.from([0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
]);
const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
sock.on('message', (msg, rinfo) => {
  const out = Buffer.allocUnsafe(answer.length);
  answer.copy(out);
  out[0] = msg[0];
  out[1] = msg[1];
  sock.send(out, rinfo.port, rinfo.address);
});
sock.bind(port, '127.0.0.1', () => process.send?.('ready'));
