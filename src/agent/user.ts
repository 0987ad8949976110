// qemu's unprivileged user (`agent.user`): looked up once at start, through NSS like qemu's own
// -runas does, so a user that only exists in LDAP works too.
import { run, CommandError } from './exec.js';

export class NoSuchUser extends Error {}

export async function lookupUser(name: string, getent = 'getent'): Promise<{ uid: number; gid: number }> {
  let line: string;
  try {
    line = (await run(getent, ['passwd', name])).trim().split('\n')[0] ?? '';
  } catch (err) {
    if (err instanceof CommandError && err.code === 2) {
      throw new NoSuchUser(`agent.user "${name}" does not exist on this host: create it with useradd --system --no-create-home --shell /usr/sbin/nologin ${name}`);
    }
    throw err;
  }
  const [, , uid, gid] = line.split(':');
  if (!/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) throw new NoSuchUser(`agent.user "${name}": unreadable passwd entry`);
  if (Number(uid) === 0) throw new NoSuchUser(`agent.user "${name}" is root: qemu must run unprivileged`);
  return { uid: Number(uid), gid: Number(gid) };
}
