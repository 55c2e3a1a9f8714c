// Whether a pid is a VM's Firecracker: a pid file the owner can write, or a pid reused since, can name any
// process, and this decides what bangerd trusts and signals.
import fs from 'node:fs';

export interface FirecrackerIdentity {
  /** The binary's file name: the process is named after it (the jailer copies it into the jail under that name). */
  execName: string;
  /** The --id Firecracker was started with (the jailer passes --id=<id>). */
  jailId: string;
}

/**
 * True when `pid` lives (not a zombie), its process name is the Firecracker binary's, and its command line
 * carries `--id=<jailId>` (or `--id <jailId>`). The name is the kernel's (/proc/PID/comm, 15 characters).
 */
export function isFirecrackerProcess(pid: number | null, who: FirecrackerIdentity, procDir = '/proc'): boolean {
  if (!pid || !Number.isInteger(pid) || pid <= 0) return false;
  try {
    const stat = fs.readFileSync(`${procDir}/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) [ZX]/.test(stat)) return false;
    const comm = fs.readFileSync(`${procDir}/${pid}/comm`, 'utf8').trim();
    if (comm !== who.execName.slice(0, 15)) return false;
    const argv = fs.readFileSync(`${procDir}/${pid}/cmdline`, 'utf8').split('\0');
    const i = argv.indexOf('--id');
    return argv.includes(`--id=${who.jailId}`) || (i >= 0 && argv[i + 1] === who.jailId);
  } catch {
    return false;
  }
}
