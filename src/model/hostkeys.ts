// SSH host keys a guest published (guest attribute namespace `hostkeys`, one key per type, the
// value being the base64 blob, as Google's guest agent writes them) turned into what a client
// trusts: known_hosts lines and DNS SSHFP records (RFC 4255, SHA-256 fingerprints per RFC 6594).
import { createHash } from 'node:crypto';
import { checkSshKey } from './ssh.js';

export const HOSTKEYS_NAMESPACE = 'hostkeys';

/** SSHFP algorithm numbers (IANA "SSHFP RR Types for public key algorithms"). */
const SSHFP_ALGORITHM: Record<string, number> = {
  'ssh-rsa': 1, 'ssh-dss': 2, 'ecdsa-sha2-nistp256': 3, 'ecdsa-sha2-nistp384': 3, 'ecdsa-sha2-nistp521': 3, 'ssh-ed25519': 4, 'ssh-ed448': 6,
};
export const SSHFP_SHA256 = 2;

export interface HostKey { type: string; blob: string }
export interface Sshfp { algorithm: number; fpType: number; fingerprint: Buffer }

/** The valid host keys among a VM's `hostkeys` attributes (anything malformed is left out). */
export function hostKeys(namespace: Record<string, string> | undefined): HostKey[] {
  const out: HostKey[] = [];
  for (const [type, value] of Object.entries(namespace ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    if (!(type in SSHFP_ALGORITHM)) continue;
    // Some publishers send the whole "type blob comment" line; take the blob either way.
    const parts = value.trim().split(/\s+/);
    const blob = parts.length > 1 && parts[0] === type ? parts[1] : parts[0];
    const checked = checkSshKey(`${type} ${blob}`);
    if ('key' in checked) out.push({ type, blob });
  }
  return out;
}

/** known_hosts lines: every name and address the VM answers to, then the key. */
export function knownHostsLines(names: string[], keys: HostKey[]): string[] {
  const hosts = [...new Set(names)].join(',');
  return keys.map((k) => `${hosts} ${k.type} ${k.blob}`);
}

export function sshfpRecords(keys: HostKey[]): Sshfp[] {
  return keys.map((k) => ({
    algorithm: SSHFP_ALGORITHM[k.type],
    fpType: SSHFP_SHA256,
    fingerprint: createHash('sha256').update(Buffer.from(k.blob, 'base64')).digest(),
  }));
}
