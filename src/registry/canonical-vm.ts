// A fast path for the registry's hottest decode: a VM record already in the exact form VmSchema
// outputs (what the writer stores) is accepted as is, with no copy. Anything else (a missing
// default, another key order, a non-canonical MAC or address, any doubt) returns undefined and
// goes through VmSchema, which decides and explains. So this must never accept what VmSchema
// rejects, and what it accepts must equal VmSchema's output key for key, in order
// (canonical-vm.test.ts checks both on mutated records).
import { z } from 'zod';
import type { Vm } from '../model/schema.js';
import { isDnsLabel } from '../model/names.js';
import { normalizeAddress } from '../model/ip.js';
import { checkSshKey } from '../model/ssh.js';
import { BASE64_FIELD, MAX_DATA_BYTES, isCanonicalBase64 } from '../model/user-data.js';

const UUID = (z.uuid()._zod.def as { pattern: RegExp }).pattern;
const MAC = /^[0-9a-f][02468ace](?::[0-9a-f]{2}){5}$/;
const HOST = /^[A-Za-z0-9_.-]{1,253}$/;
const META_KEY = /^[A-Za-z0-9_.-]{1,255}$/;

/** VmSchema's keys in its output order; `true` marks those always present (required or defaulted). */
const VM_KEYS: [string, boolean][] = [
  ['v', true], ['id', true], ['name', true], ['network', true], ['owner', false], ['mac', true], ['addresses', true],
  ['host', false], ['resources', true], ['userData', false], ['userDataBase64', false], ['vendorData', false],
  ['vendorDataBase64', false], ['meta', true], ['sshKeys', true],
  ['requireToken', true], ['createdAt', true],
];
const RESOURCE_KEYS: [string, boolean][] = [
  ['memoryMiB', true], ['cpus', true], ['disk', false], ['kernel', false], ['initrd', false], ['cmdline', false],
];

const isObject = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x) && Object.getPrototypeOf(x) === Object.prototype;

/** The object's own keys are exactly the required ones plus some optional ones, in schema order. */
function keysInOrder(o: Record<string, unknown>, spec: [string, boolean][]): boolean {
  const keys = Object.keys(o);
  let i = 0;
  for (const [name, always] of spec) {
    if (keys[i] === name) i++;
    else if (always) return false;
  }
  return i === keys.length;
}

const optString = (x: unknown) => x === undefined || typeof x === 'string';
const intIn = (x: unknown, lo: number, hi: number) => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;

function canonicalResources(r: unknown): boolean {
  if (!isObject(r) || !keysInOrder(r, RESOURCE_KEYS)) return false;
  if (!intIn(r.memoryMiB, 16, 4 * 1024 * 1024) || !intIn(r.cpus, 1, 512)) return false;
  for (const k of ['disk', 'kernel', 'initrd'] as const) if (r[k] !== undefined && (typeof r[k] !== 'string' || r[k] === '')) return false;
  if (!optString(r.cmdline)) return false;
  if (r.disk && r.kernel) return false;
  if ((r.initrd || r.cmdline) && !r.kernel) return false;
  return true;
}

function canonicalMeta(m: unknown): boolean {
  if (!isObject(m)) return false;
  for (const k of Object.keys(m)) {
    // __proto__ matches the key pattern but is an own JSON key only: let the schema decide.
    if (k === '__proto__' || !META_KEY.test(k)) return false;
    const v = m[k];
    if (typeof v !== 'string' || v.length > 4096) return false;
  }
  return true;
}

export function canonicalVm(x: unknown): Vm | undefined {
  if (!isObject(x) || !keysInOrder(x, VM_KEYS)) return undefined;
  if (x.v !== 1) return undefined;
  if (typeof x.id !== 'string' || !UUID.test(x.id)) return undefined;
  if (typeof x.name !== 'string' || !isDnsLabel(x.name)) return undefined;
  if (typeof x.network !== 'string' || !isDnsLabel(x.network)) return undefined;
  if (!optString(x.owner)) return undefined;
  if (typeof x.mac !== 'string' || !MAC.test(x.mac)) return undefined;
  if (!Array.isArray(x.addresses) || !x.addresses.every((a) => typeof a === 'string' && normalizeAddress(a) === a)) return undefined;
  if (x.host !== undefined && (typeof x.host !== 'string' || !HOST.test(x.host))) return undefined;
  if (!canonicalResources(x.resources)) return undefined;
  for (const k of ['userData', 'vendorData'] as const) {
    const text = x[k];
    const b64 = x[BASE64_FIELD[k]];
    if (text !== undefined && (typeof text !== 'string' || text.length > MAX_DATA_BYTES)) return undefined;
    if (b64 !== undefined && (typeof b64 !== 'string' || text !== undefined || !isCanonicalBase64(b64))) return undefined;
  }
  if (!canonicalMeta(x.meta)) return undefined;
  if (!Array.isArray(x.sshKeys) || !x.sshKeys.every((k) => {
    if (typeof k !== 'string') return false;
    const r = checkSshKey(k);
    return 'key' in r && r.key === k;
  })) return undefined;
  if (typeof x.requireToken !== 'boolean') return undefined;
  if (typeof x.createdAt !== 'string') return undefined;
  return x as unknown as Vm;
}
