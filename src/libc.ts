// libc functions through koffi (a maintained FFI with prebuilt binaries), for what Node does not
// expose: a per-socket hop limit (http/hop-limit.ts), malloc_trim (daemon/compact.ts). koffi and
// libc are loaded once, when first needed; a failure throws to the caller, which decides.
import { createRequire } from 'node:module';
import type { LibraryHandle } from 'koffi';

let libc: LibraryHandle | undefined;

export function libcFunction<F>(signature: string): F {
  libc ??= (createRequire(import.meta.url)('koffi') as typeof import('koffi')).load('libc.so.6');
  return libc.func(signature) as F;
}
