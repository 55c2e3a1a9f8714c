// A VM's disks for a VMM that takes only raw block devices (Firecracker): the image itself, shared read-only by
// every VM made from it (a symlink in the VM's directory names it); a sparse writable disk that banger's /init
// lays over it as an overlay; and the work disk. Nothing is copied, so creating a VM costs the same whatever
// the image's size. The host here has neither device-mapper nor a reflink file system; this works everywhere.
import fs from 'node:fs';
import path from 'node:path';
import { runChecked, type ProcessRunner } from '../../system/process.ts';
import { UPPER_LABEL } from '../../system/guest-contract.ts';
import type { DiskOptions, VmFiles } from '../driver.ts';
import { makeWorkDisk } from '../work-disk.ts';

export interface OverlayDisk {
  /** The drive's id in Firecracker's API. */
  id: string;
  path: string;
  readOnly: boolean;
}

/** The drives of a VM made by makeOverlayDisks, in the order they are attached. */
export function overlayDisksOf(files: VmFiles): OverlayDisk[] {
  return [
    { id: 'rootfs', path: path.join(files.dir, 'root-base.ext4'), readOnly: true },
    { id: 'upper', path: path.join(files.dir, 'root-upper.ext4'), readOnly: false },
    { id: 'work', path: files.workDisk, readOnly: false },
  ];
}

/**
 * The drives as bangerd-root is handed them: the shared image by its own path (the link's target, a real path
 * made by makeOverlayDisks), since bangerd-root takes no symlink in banger's directories (owned-path.ts).
 */
export function launchDisksOf(files: VmFiles): OverlayDisk[] {
  return overlayDisksOf(files).map((d) => {
    if (d.id !== 'rootfs') return d;
    try {
      return { ...d, path: fs.readlinkSync(d.path) };
    } catch {
      // No link (the disks were never made): bangerd-root names the missing file.
      return d;
    }
  });
}

export async function makeOverlayDisks(runner: ProcessRunner, files: VmFiles, options: DiskOptions): Promise<void> {
  const [base, upper] = overlayDisksOf(files);
  fs.rmSync(base!.path, { force: true });
  fs.symlinkSync(fs.realpathSync(options.baseImage), base!.path);
  // The upper layer holds what the guest changes in its root (whole files, as overlayfs copies them up); it is
  // as large as the VM's disk and sparse, so its size costs nothing until written.
  const fd = fs.openSync(upper!.path, 'w', 0o600);
  fs.ftruncateSync(fd, options.workDiskGib * 1024 ** 3);
  fs.closeSync(fd);
  await runChecked(runner, 'mkfs.ext4', ['-q', '-F', '-L', UPPER_LABEL, '-E', 'root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1', upper!.path], { signal: options.signal });
  await makeWorkDisk(runner, files.workDisk, options);
}
