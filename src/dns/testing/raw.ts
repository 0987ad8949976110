// Hand-built DNS packets over UDP for what dig cannot send (trailing bytes, overrunning EDNS
// options, short cookies), and a minimal read of the reply. Test-only.
import { createSocket } from 'node:dgram';
import { parseResponse } from '../wire.js';

/** Sends one datagram to 127.0.0.1:port and resolves with the first reply, or undefined after `ms`. */
export function udpAsk(port: number, packet: Buffer, ms = 2000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const done = (b?: Buffer) => {
      clearTimeout(timer);
      sock.close();
      resolve(b);
    };
    const timer = setTimeout(() => done(undefined), ms);
    sock.on('message', (m) => done(m));
    sock.send(packet, port, '127.0.0.1');
  });
}

export interface RawReply {
  rcode: number;
  flags: number;
  /** The reply carries an OPT record. */
  opt: boolean;
  /** The reply echoes a question. */
  question: boolean;
}

/** The parts of a reply the RFC checks look at; undefined when there was no reply. */
export function readReply(b: Buffer | undefined): RawReply | undefined {
  if (!b) return undefined;
  const flags = b.readUInt16BE(2);
  const qd = b.readUInt16BE(4);
  let opt = false;
  if (qd === 1) opt = parseResponse(b)?.records.some((r) => r.type === 41) ?? false;
  // A reply without a question: the OPT, if any, is the only record (root owner, type 41).
  else if (b.readUInt16BE(10) === 1) opt = b.length >= 23 && b[12] === 0 && b.readUInt16BE(13) === 41;
  return { rcode: flags & 0xf, flags, opt, question: qd === 1 };
}
