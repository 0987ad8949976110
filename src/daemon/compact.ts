// A full garbage collection after a bulk load. Loading 100,000 VMs leaves ~70 MB of parsed JSON,
// range pages and superseded indexes that V8's heuristics keep around for a long time; one full
// collection right after the load returns it (measured: RSS 322 -> 277 MiB at 100k VMs). Node
// hides `gc` unless started with --expose-gc, and the daemon is started by users, systemd and
// `npm start` alike, so the flag is set from inside.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

export function collectGarbage(): void {
  if (!gc) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  gc();
}
