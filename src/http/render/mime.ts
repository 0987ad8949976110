// Vendor-data bytes as the JSON string OpenStack's vendor_data.json carries under "cloud-init".
// A JSON string holds text only, so this gives cloud-init's user-data processor (user_data.py,
// convert_string) what it would make of the bytes itself: it gunzips first, so gzip is sent
// decompressed; what is then UTF-8 goes as text, exactly; anything else goes as a one-part MIME
// message carrying the bytes in base64, under the type cloud-init gives raw bytes
// (text/x-not-multipart), which it decodes back to the same bytes.
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { encodeData } from '../../model/user-data.js';

/** Bounds what a hostile gzip in the store can make the appliance inflate. */
const MAX_INFLATED = 16 * 1024 * 1024;

function gunzipLikeCloudInit(bytes: Buffer): Buffer {
  if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    return gunzipSync(bytes, { maxOutputLength: MAX_INFLATED });
  } catch {
    return bytes; // cloud-init's decomp_gzip(quiet=True) also keeps what it cannot inflate
  }
}

export function vendorDataString(raw: Buffer): string {
  const bytes = gunzipLikeCloudInit(raw);
  const stored = encodeData(bytes);
  if ('text' in stored) return stored.text;
  // No base64 line starts with "--" or holds '_'; derived from the bytes, so the same bytes
  // render the same body (and ETag) every time.
  const boundary = `==uncloud_${createHash('sha256').update(bytes).digest('hex').slice(0, 16)}==`;
  return [
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    'MIME-Version: 1.0',
    '',
    `--${boundary}`,
    'Content-Type: text/x-not-multipart',
    'MIME-Version: 1.0',
    'Content-Transfer-Encoding: base64',
    '',
    `${stored.base64.replace(/.{1,76}/g, '$&\n')}--${boundary}--`,
    '',
  ].join('\n');
}
