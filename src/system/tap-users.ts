// Which processes hold a tap open. A tun/tap descriptor is a link to /dev/net/tun, and the kernel names the
// device it is attached to in the descriptor's fdinfo ("iff:\t<name>"), whichever network namespace the
// device lives in. Nothing else tells a tap that carries a running VM from a leftover one.
import fs from 'node:fs';
import path from 'node:path';

const TUN_DEVICE = '/dev/net/tun';

function readdirOrEmpty(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** Whether descriptor `fd` of process `pid` is attached to `tap`. Processes and descriptors come and go meanwhile. */
function fdAttachedTo(procRoot: string, pid: string, fd: string, tap: string): boolean {
  try {
    if (fs.readlinkSync(path.join(procRoot, pid, 'fd', fd)) !== TUN_DEVICE) return false;
    const info = fs.readFileSync(path.join(procRoot, pid, 'fdinfo', fd), 'utf8');
    return info.split('\n').some((line) => line === `iff:\t${tap}`);
  } catch {
    return false;
  }
}

/** Pids of the live processes that have `tap` attached to one of their descriptors (reads `procRoot`, normally /proc). */
export function findTapUsers(tap: string, procRoot = '/proc'): number[] {
  const users: number[] = [];
  for (const pid of readdirOrEmpty(procRoot)) {
    if (!/^\d+$/.test(pid)) continue;
    const fds = readdirOrEmpty(path.join(procRoot, pid, 'fd'));
    if (fds.some((fd) => fdAttachedTo(procRoot, pid, fd, tap))) users.push(Number(pid));
  }
  return users;
}
