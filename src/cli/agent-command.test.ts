// `uncloud-metadata agent` refuses to start, in one line, without qemu's unprivileged user or on a
// store in an older layout (it would not see its VMs), and takes agent.imageDirs as absolute
// directories only.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../store/open.js';
import { ensureQemuUser, QEMU_USER } from '../../test/support/qemu-user.js';

const run = promisify(execFile);
const BIN = join(import.meta.dirname, '../../dist/cli/main.js');
const dir = mkdtempSync(join(tmpdir(), 'uncloud-cli-agent-'));

async function agent(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, 'agent', '--store', `file:${join(dir, 'state.json')}`, '--host', 'hv1', '--state-dir', join(dir, 'st'), '--accel', 'tcg', '--admin', 'none', ...args],
      { env: { ...process.env, UNCLOUD_METADATA_STORE: '' }, timeout: 20_000 });
    return { code: 0, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe('agent command', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to start without agent.user, in one line that says how to create it', async () => {
    const r = await agent('--user', 'uncloud-nosuchuser');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toEqual(['error: agent.user "uncloud-nosuchuser" does not exist on this host: create it with useradd --system --no-create-home --shell /usr/sbin/nologin uncloud-nosuchuser']);
  });

  it('refuses a store in layout 2 in one line, touching nothing', async () => {
    ensureQemuUser();
    const path = join(dir, 'layout2.json');
    const store = openStore(`file:${path}`);
    await store.kv.txn({ compares: [], deletes: [], puts: [{ key: store.keys.layout, value: '{"v":2}' }] });
    await store.kv.close();
    const r = await agent('--user', QEMU_USER, '--store', `file:${path}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('{'))).toEqual(['error: store at /uncloud/ has layout 2: run `uncloud-metadata store migrate` (this agent reads layout 3); no VM was touched']);
    expect(r.stderr).not.toMatch(/nftables|qemu started|"level":50/);
  });

  it('refuses a store with no layout marker in one line, touching nothing', async () => {
    const r = await agent('--user', QEMU_USER, '--store', `file:${join(dir, 'empty.json')}`);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n').filter((l) => !l.startsWith('{'))).toEqual(['error: store at /uncloud/ has no layout marker (layout 1, or no network created yet): run `uncloud-metadata store migrate`, or create a network first (this agent reads layout 3); no VM was touched']);
  });

  it('refuses a relative image directory in one line', async () => {
    const r = await agent('--image-dir', 'images');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/imageDirs.*must be an absolute directory/);
  });
});
