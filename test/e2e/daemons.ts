// A test's background processes in network namespaces: their output kept by name (for assertions
// and for the dump a failure leaves behind), and one way to end them, guests' qemus included.
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { Netns } from './netns.js';
import { isOurQemu, readPid } from '../../src/agent/qemu.js';

export class Daemons {
  readonly logs = new Map<string, string>();
  private readonly procs: ChildProcess[] = [];

  start(name: string, ns: Netns, cmd: string, args: string[]): ChildProcess {
    const p = ns.spawn(cmd, args);
    this.logs.set(name, '');
    p.stdout!.on('data', (b) => this.logs.set(name, this.logs.get(name) + b));
    p.stderr!.on('data', (b) => this.logs.set(name, this.logs.get(name) + b));
    this.procs.push(p);
    return p;
  }

  /** The last `tail` characters of each one's output, under its name. */
  dump(tail: number): string {
    return [...this.logs].map(([n, l]) => `--- ${n}\n${l.slice(-tail)}`).join('\n');
  }

  /**
   * SIGTERM to each in reverse start order; the qemus the agent started for `vms` (under
   * `stateDir`/`network`) are killed outright (they outlive the agent); SIGKILL to any process
   * still running 300 ms later.
   */
  async stop(vms: { stateDir?: string; network: string; names: string[] }): Promise<void> {
    for (const p of [...this.procs].reverse()) p.kill('SIGTERM');
    for (const name of vms.names) {
      const pid = vms.stateDir ? readPid(join(vms.stateDir, vms.network, name)) : undefined;
      if (pid && isOurQemu(pid, `${vms.network}/${name}`)) process.kill(pid, 'SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
  }
}
