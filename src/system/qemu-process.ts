// Whether a pid is a VM's QEMU: a pid file the owner can write, or a pid reused since, can name any process.
// bangerd-root checks the pid it hands back with this (run as the owner), and bangerd the pid it signals.
import fs from 'node:fs';
import path from 'node:path';
import { qemuProcessName } from './qemu-argv.ts';

/**
 * Why process `pid` is not VM `vmId`'s live QEMU (not a zombie, a qemu-system-* executable, started with the
 * VM's -name, and run as `uid` when given: its real and effective uid); null when it is.
 */
export function qemuProcessProblem(o: { procDir: string; vmId: string; pid: number | null; uid?: number }): string | null {
  if (!o.pid || !Number.isInteger(o.pid) || o.pid <= 0) return 'no such process';
  const dir = path.join(o.procDir, String(o.pid));
  try {
    if (/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(path.join(dir, 'stat'), 'utf8'))) return 'it has exited';
    if (o.uid !== undefined) {
      // Uid: real, effective, saved, filesystem.
      const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(fs.readFileSync(path.join(dir, 'status'), 'utf8'));
      if (!uids || Number(uids[1]) !== o.uid || Number(uids[2]) !== o.uid) return `it does not run as uid ${o.uid}`;
    }
    const exe = path.basename(fs.readlinkSync(path.join(dir, 'exe'))).replace(/ \(deleted\)$/, '');
    if (!exe.startsWith('qemu-system-')) return `it runs ${exe}, not QEMU`;
    const argv = fs.readFileSync(path.join(dir, 'cmdline'), 'utf8').split('\0');
    const i = argv.indexOf('-name');
    if (i < 0 || argv[i + 1]?.split(',')[0] !== qemuProcessName(o.vmId)) return `it is not the QEMU of VM ${o.vmId}`;
    return null;
  } catch {
    return 'no such process';
  }
}
