// Whether a pid is a VM's Firecracker: a pid file the owner can write, or a pid reused since, can name any
// process, and this decides what bangerd trusts and signals, and the pid bangerd-root hands back.
import fs from 'node:fs';

export interface FirecrackerIdentity {
  /** The binary's file name: the process is named after it (the jailer copies it into the jail under that name). */
  execName: string;
  /** The --id Firecracker was started with (the jailer passes --id=<id>). */
  jailId: string;
  /**
   * The uid it must run as (real and effective): bangerd-root passes the owner's. A process's name and command
   * line are the owner's to set, so this is what keeps root's and other users' processes out.
   */
  uid?: number;
}

/** Whether a command line carries `--id=<jailId>` or `--id <jailId>`, as both the jailer's and Firecracker's do. */
function carriesId(argv: string[], jailId: string): boolean {
  const i = argv.indexOf('--id');
  return argv.includes(`--id=${jailId}`) || (i >= 0 && argv[i + 1] === jailId);
}

/**
 * Why `pid` is not the live (not a zombie) Firecracker of `who`: its process name (the kernel's, /proc/PID/comm,
 * 15 characters) must be the binary's, its command line must carry the jail id, and it must run as `who.uid`
 * when given. null when it is.
 */
export function firecrackerProcessProblem(pid: number | null, who: FirecrackerIdentity, procDir = '/proc'): string | null {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return 'no such process';
  try {
    const stat = fs.readFileSync(`${procDir}/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) [ZX]/.test(stat)) return 'it has exited';
    if (who.uid !== undefined) {
      // Uid: real, effective, saved, filesystem.
      const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(`${procDir}/${pid}/status`, 'utf8'));
      if (!uids || Number(uids[1]) !== who.uid || Number(uids[2]) !== who.uid) return `it does not run as uid ${who.uid}`;
    }
    const comm = fs.readFileSync(`${procDir}/${pid}/comm`, 'utf8').trim();
    if (comm !== who.execName.slice(0, 15)) return `it runs ${comm}, not ${who.execName}`;
    const argv = fs.readFileSync(`${procDir}/${pid}/cmdline`, 'utf8').split('\0');
    return carriesId(argv, who.jailId) ? null : `it is not the Firecracker of ${who.jailId}`;
  } catch {
    return 'no such process';
  }
}

/** True when `pid` is the Firecracker of `who` (see firecrackerProcessProblem). */
export function isFirecrackerProcess(pid: number | null, who: FirecrackerIdentity, procDir = '/proc'): boolean {
  return firecrackerProcessProblem(pid, who, procDir) === null;
}

/**
 * Whether live process `pid` carries the jail id on its command line: the jailer's child between the pid file
 * and its exec of Firecracker (or `ip netns exec`/setpriv before theirs), which is worth waiting for. Anything
 * else a pid file names never becomes that VM's Firecracker.
 */
export function isStartingFirecracker(pid: number, jailId: string, procDir = '/proc'): boolean {
  try {
    if (/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`${procDir}/${pid}/stat`, 'utf8'))) return false;
    return carriesId(fs.readFileSync(`${procDir}/${pid}/cmdline`, 'utf8').split('\0'), jailId);
  } catch {
    return false;
  }
}
