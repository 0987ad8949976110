// OpenSSH public keys: check the shape so a typo never reaches a guest's authorized_keys.

const KEY_TYPES = new Set([
  'ssh-ed25519', 'ssh-rsa', 'ssh-dss', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com', 'sk-ecdsa-sha2-nistp256@openssh.com',
]);

/**
 * Returns the key as one normalised line, or an error message. The base64 blob must decode and
 * start with its own type name, as OpenSSH writes it.
 */
export function checkSshKey(text: string): { key: string } | { error: string } {
  const line = text.trim();
  if (/[\r\n\0]/.test(line)) return { error: 'an SSH key must be a single line' };
  const [type, blob, ...comment] = line.split(/\s+/);
  if (!KEY_TYPES.has(type)) return { error: `unknown SSH key type "${type ?? ''}"` };
  if (!blob || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return { error: 'SSH key data is not base64' };
  const raw = Buffer.from(blob, 'base64');
  if (raw.length < 4) return { error: 'SSH key data is too short' };
  const n = raw.readUInt32BE(0);
  if (n + 4 > raw.length || raw.subarray(4, 4 + n).toString('latin1') !== type) {
    return { error: `SSH key data does not match its type "${type}"` };
  }
  return { key: [type, blob, ...comment].join(' ') };
}
