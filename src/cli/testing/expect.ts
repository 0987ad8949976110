// What every CLI test asks of a command on a store: `ok` succeeds with nothing on stderr; `refused`
// fails with one line on stderr and writes nothing (every key's revision unchanged).
import { expect } from 'vitest';
import { openStore } from '../../store/open.js';
import { cli } from './run.js';

export function cliOnStore(store: () => { url: string; prefix: string }) {
  const base = () => ['--store', store().url, '--prefix', store().prefix];
  const snapshot = async () => {
    const { url, prefix } = store();
    const s = openStore(url, { prefix });
    try {
      return JSON.stringify((await s.kv.range(`${prefix}/`)).entries.map((e) => [e.key, e.modRevision]));
    } finally {
      await s.kv.close();
    }
  };
  const ok = async (args: string[]) => {
    const r = await cli([...args, ...base()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return r;
  };
  const refused = async (args: string[], message: RegExp) => {
    const before = await snapshot();
    const r = await cli([...args, ...base()]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await snapshot()).toBe(before);
  };
  return { ok, refused };
}
