// CHAOS-class identity questions (RFC 4892): `version.bind`/`version.server` and
// `id.server`/`hostname.bind` answer a TXT with what the operator configured, as Knot and BIND
// do; anything else in a class other than IN (CH, HS, ...) is REFUSED, as Knot answers.
import type { AuthAnswer } from './authority.js';
import { CLASS_CH, RCODE, TYPE } from './wire.js';

export interface ChaosIdentity {
  /** TXT for version.bind / version.server; unset: REFUSED. */
  version?: string;
  /** TXT for id.server / hostname.bind; unset: REFUSED. */
  identity?: string;
}

const TXT = 16;

/** The answer to a CH TXT (or ANY) identity question, or undefined to refuse. */
export function chaosAnswer(qname: string, qtype: number, qclass: number, id: ChaosIdentity): AuthAnswer | undefined {
  if (qclass !== CLASS_CH || (qtype !== TXT && qtype !== TYPE.ANY)) return undefined;
  const text = qname === 'version.bind' || qname === 'version.server' ? id.version
    : qname === 'id.server' || qname === 'hostname.bind' ? id.identity : undefined;
  if (text === undefined) return undefined;
  const bytes = Buffer.from(text, 'utf8').subarray(0, 255);
  const rdata = Buffer.concat([Buffer.from([bytes.length]), bytes]);
  // TTL 0, not authoritative: what Knot sends.
  return { network: '', rcode: RCODE.NOERROR, answer: [{ name: qname, type: TXT, class: CLASS_CH, ttl: 0, rdata }], authority: [], additional: [] };
}
