// Open connections bounded per client address and in all. The appliance's file descriptors are
// shared by every VM (and by the DNS forwarder's sockets): one guest holding thousands of idle
// keep-alive connections must not push everyone else's requests into ECONNRESET. Past a bound a
// new connection is closed at once; the client's existing ones keep working.
import type { Server } from 'node:net';
import type { Socket } from 'node:net';

export class ConnectionLimit {
  private readonly open = new Map<string, number>();
  private total = 0;
  refused = 0;

  constructor(private readonly perAddress: number, private readonly overall: number) {}

  /** Sockets of `server` past a bound are destroyed as they arrive. */
  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.admit(socket));
  }

  private admit(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    const n = this.open.get(address) ?? 0;
    if (n >= this.perAddress || this.total >= this.overall) {
      this.refused++;
      socket.destroy();
      return;
    }
    this.open.set(address, n + 1);
    this.total++;
    socket.once('close', () => {
      this.total--;
      const left = (this.open.get(address) ?? 1) - 1;
      if (left > 0) this.open.set(address, left);
      else this.open.delete(address);
    });
  }
}
