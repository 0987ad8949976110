// Handing memory back after a bulk load (the first load, and every full reload).
//
// 1. One full garbage collection. Loading 100,000 VMs leaves ~70 MB of parsed JSON, range pages
//    and superseded indexes that V8's heuristics keep around for a long time; one full collection
//    right after the load returns it (measured: RSS 322 -> 277 MiB at 100k VMs). Node hides `gc`
//    unless started with --expose-gc, and the daemon is started by users, systemd and `npm start`
//    alike, so the flag is set from inside.
// 2. The C heap: the store's range pages (gRPC messages of up to 8 MiB and their buffers) live
//    outside V8's heap, and glibc keeps what they freed in its arenas; malloc_trim(0) hands it
//    back (measured at 100,000 VMs: [heap] 43 -> 6 MiB). Through koffi (../libc.ts), loaded for the hop
//    limit; a C library without malloc_trim (musl) simply keeps its memory.
// 3. The young generation: the load grows it to its maximum (32 MiB) and V8 shrinks it only in a
//    collection that sees the allocation rate low, which an idle appliance never runs. A few
//    scavenges (1-5 ms each) in the seconds after the load let it (measured at 100,000 VMs:
//    new space 31 -> 1 MiB, RSS 224 -> 193 MiB); the C heap is trimmed again after them.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { libcFunction } from '../libc.js';

type Gc = (options?: { type?: 'major' | 'minor' }) => void;
let gc: Gc | undefined;
let trim: ((pad: number) => number) | null | undefined;
let settling: NodeJS.Timeout | undefined;
const SETTLE_TICKS = 8;
const SETTLE_EVERY_MS = 1000;

export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as Gc;
  }
  gc();
  trimMalloc();
  settle(gc);
}

/** Scavenges once a second for a few seconds (a newer load restarts the count). */
function settle(collect: Gc): void {
  clearInterval(settling);
  let ticks = 0;
  settling = setInterval(() => {
    collect({ type: 'minor' });
    if (++ticks < SETTLE_TICKS) return;
    clearInterval(settling);
    trimMalloc();
  }, SETTLE_EVERY_MS);
  settling.unref();
}

function trimMalloc(): void {
  if (trim === undefined) {
    try {
      trim = libcFunction<(pad: number) => number>('int malloc_trim(size_t pad)');
    } catch {
      trim = null;
    }
  }
  trim?.(0);
}
