// A minimal QMP client: connect, negotiate capabilities, run one command, disconnect. Enough to
// ask a guest to power down and to check that a pidfile's process really is our qemu.
import { createConnection } from 'node:net';

export class QmpError extends Error {}

export async function qmpCommand(socketPath: string, execute: string, args?: Record<string, unknown>, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    let step = 0; // 0: greeting, 1: capabilities, 2: command
    const done = (err: Error | undefined, value?: unknown) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => done(new QmpError(`QMP ${execute} on ${socketPath} timed out`)), timeoutMs);
    sock.on('error', (err) => done(new QmpError(`QMP ${socketPath}: ${err.message}`)));
    sock.on('close', () => done(new QmpError(`QMP ${socketPath} closed before answering ${execute}`)));
    sock.on('data', (chunk) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(line) as Record<string, unknown>;
        } catch {
          return done(new QmpError(`QMP ${socketPath}: not JSON`));
        }
        if ('event' in msg) continue;
        if ('error' in msg) return done(new QmpError(`QMP ${execute}: ${JSON.stringify(msg.error)}`));
        if (step === 0 && 'QMP' in msg) {
          step = 1;
          sock.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
        } else if (step === 1 && 'return' in msg) {
          step = 2;
          sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
        } else if (step === 2 && 'return' in msg) {
          return done(undefined, msg.return);
        }
      }
    });
  });
}
