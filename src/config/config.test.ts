// Config precedence (flags > env > file > defaults) and errors that name the key.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './load.js';
import { BIN } from '../../test/support/daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'uncloud-config-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const exec = promisify(execFile);

describe('config', () => {
  it('applies defaults', () => {
    const c = loadConfig({ env: {} });
    expect(c.store.prefix).toBe('/uncloud');
    expect(c.serve.admin).toEqual(['[::1]:9153']);
    expect(c.serve.ttl).toBe(30);
    expect(c.agent.qemu).toBe('qemu-system-x86_64');
  });

  it('layers flags over environment over file', () => {
    const f = file('layers.yaml', 'store:\n  url: file:/a\nserve:\n  ttl: 10\n  dns: ["[::1]:53"]\n  upstreams: ["127.0.0.1:53"]\n');
    const env = { UNCLOUD_METADATA_TTL: '20', UNCLOUD_METADATA_DNS: '127.0.0.1:5300, [::1]:5300' };
    const c = loadConfig({ file: f, env, flags: { serve: { ttl: 40 } } });
    expect(c.serve.ttl).toBe(40);
    expect(c.serve.dns).toEqual(['127.0.0.1:5300', '[::1]:5300']);
    expect(c.serve.upstreams).toEqual(['127.0.0.1:53']);
    expect(c.store.url).toBe('file:/a');
  });

  it('names the offending key', () => {
    expect(() => loadConfig({ file: file('a.yaml', 'serve:\n  ttl: lots\n'), env: {} })).toThrow(/a\.yaml: serve\.ttl: /);
    expect(() => loadConfig({ file: file('b.yaml', 'serve:\n  dnz: []\n'), env: {} })).toThrow(/serve: unknown key "dnz"/);
    expect(() => loadConfig({ file: file('c.yaml', 'serve:\n  dns: ["nowhere"]\n'), env: {} })).toThrow(/serve\.dns\.0: must be ADDR\[:PORT\]/);
    expect(() => loadConfig({ file: file('d.yaml', 'serve: [1, 2\n'), env: {} })).toThrow(/not valid YAML/);
    expect(() => loadConfig({ file: join(dir, 'missing.yaml'), env: {} })).toThrow(/cannot read config .*missing\.yaml: ENOENT/);
    expect(() => loadConfig({ env: { UNCLOUD_METADATA_TTL: 'x' } })).toThrow(/UNCLOUD_METADATA_TTL: "x" is not a number/);
    expect(() => loadConfig({ env: { UNCLOUD_METADATA_BARE_METADATA: 'perhaps' } })).toThrow(/not true or false/);
  });

  it('accepts the shipped example config', () => {
    const c = loadConfig({ file: join(import.meta.dirname, '../../deploy/config.example.yaml'), env: {} });
    expect(c.store.tls?.ca).toMatch(/etcd-ca\.pem$/);
    expect(c.agent.host).toBe('hv1');
  });

  it('`config check` says ok or names the key in one line', async () => {
    const ok = await exec(process.execPath, [BIN, 'config', 'check', join(import.meta.dirname, '../../deploy/config.example.yaml')]);
    expect(ok.stdout).toMatch(/: ok$/m);
    const bad = await exec(process.execPath, [BIN, 'config', 'check', file('e.yaml', 'log:\n  level: loud\n')]).catch((e) => e);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim()).toMatch(/^error: .*e\.yaml: log\.level: /);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});
