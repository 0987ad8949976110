// Network namespaces for tests: each test gets its own, named uniquely, and removes it after.
// Everything created inside (bridges, taps, veths, nft tables) dies with it; processes started
// in it are the caller's to stop.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { run } from '../../src/agent/exec.js';

export class Netns {
  private constructor(readonly name: string) {}

  static async create(stem = 'uct'): Promise<Netns> {
    const ns = new Netns(`${stem}-${randomBytes(4).toString('hex')}`);
    await run('ip', ['netns', 'add', ns.name]);
    await ns.ip(['link', 'set', 'lo', 'up']);
    return ns;
  }

  exec(cmd: string, args: string[], input?: string): Promise<string> {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args], { input });
  }

  ip(args: string[]): Promise<string> {
    return run('ip', ['-n', this.name, ...args]);
  }

  sh(script: string): Promise<string> {
    return this.exec('sh', ['-ec', script]);
  }

  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    return spawn('ip', ['netns', 'exec', this.name, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  }

  /** An executable that runs `binary` inside this namespace, for tools the agent invokes. */
  wrapper(binary: string): string {
    const dir = mkdtempSync(join(tmpdir(), 'uct-wrap-'));
    const path = join(dir, binary.split('/').pop()!);
    writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${this.name} ${binary} "$@"\n`);
    chmodSync(path, 0o755);
    return path;
  }

  async delete(): Promise<void> {
    await run('ip', ['netns', 'del', this.name]).catch(() => undefined);
  }
}
