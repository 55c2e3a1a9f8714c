// A VM's work disk (the guest's /root): a sparse raw file with a fresh ext4, empty or made with a directory's
// contents. Shared by every driver: QEMU and Firecracker both take a raw ext4 file as a block device.
import fs from 'node:fs';
import { runChecked, type ProcessRunner } from '../system/process.ts';
import { WORK_LABEL } from '../system/guest-contract.ts';
import { BangerError } from '../protocol/errors.ts';
import type { DiskOptions } from './driver.ts';

export async function makeWorkDisk(runner: ProcessRunner, file: string, options: DiskOptions): Promise<void> {
  // A sparse file with a fresh filesystem costs a few milliseconds whatever its size; with a seed, mkfs writes
  // its files straight into the image (no loop mount, no root needed).
  const fd = fs.openSync(file, 'w', 0o600);
  fs.ftruncateSync(fd, options.workDiskGib * 1024 ** 3);
  fs.closeSync(fd);
  const seed = options.workDiskSeed ? ['-d', options.workDiskSeed] : [];
  try {
    await runChecked(runner, 'mkfs.ext4', ['-q', '-F', '-L', WORK_LABEL, ...seed, '-E', 'root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1', file], { signal: options.signal });
  } catch (err) {
    if (options.workDiskSeed && err instanceof BangerError && err.code === 'TOOL_FAILED' && /allocate|No space|too large|Could not/i.test(err.message)) {
      throw new BangerError('WORKSPACE_FAILED', `the workspace does not fit in the ${options.workDiskGib} GiB work disk`, {
        hint: 'give the VM a larger disk (--disk 16G), or ship less (leave out --include-untracked)',
        cause: err,
      });
    }
    throw err;
  }
}
