// What every root filesystem import shares: a private build directory only root can write to, the tree packed
// into an ext4 file with room to spare, and the finished file handed to the owner. Debian builds, OCI pulls
// and rootfs tars all go through here (inside bangerd-root).
import fs from 'node:fs';
import path from 'node:path';
import type { ProcessRunner } from '../system/process.ts';
import { runChecked } from '../system/process.ts';
import { ROOT_LABEL } from '../system/guest-contract.ts';
import { asOwner, ownerArgv, type Owner } from '../system/as-owner.ts';
import { buildDirPrefix, mountsInside } from './abandoned-image-builds.ts';

/** Spare room in an image for packages users install; the file is sparse, so it costs no disk until used. */
export const IMAGE_HEADROOM_BYTES = 2 * 1024 ** 3;

/** Where builds run unless told otherwise; bangerd-root sweeps what dead helpers left there at start. */
export const DEFAULT_WORK_ROOT = '/var/tmp';

/**
 * A fresh directory under `workRoot` that only root can write to, named with this helper's pid: if the helper
 * dies before removing it, the next one does (abandoned-image-builds.ts).
 */
export function makeBuildDir(workRoot = DEFAULT_WORK_ROOT): string {
  return fs.mkdtempSync(path.join(workRoot, buildDirPrefix(process.pid)));
}

/** Bytes used by a tree, via du (handles hard links and sparse files the way the ext4 image will). */
export async function treeSize(runner: ProcessRunner, dir: string): Promise<number> {
  const out = await runChecked(runner, 'du', ['-s', '-B1', '-x', dir]);
  return Number(out.stdout.split(/\s/)[0]);
}

/** The image size for `used` bytes of files: a quarter more, plus the headroom, at least `minBytes`, whole MiB. */
export function imageSizeFor(used: number, minBytes = 0): number {
  return Math.ceil(Math.max(minBytes, used * 1.25 + IMAGE_HEADROOM_BYTES) / 1024 ** 2) * 1024 ** 2;
}

/** Packs `tree` into a new ext4 file labelled as banger's root; returns its size. */
export async function writeExt4(runner: ProcessRunner, tree: string, image: string, minBytes: number, signal: AbortSignal): Promise<number> {
  const sizeBytes = imageSizeFor(await treeSize(runner, tree), minBytes);
  await runChecked(runner, 'mkfs.ext4', ['-q', '-F', '-L', ROOT_LABEL, '-d', tree, '-E', 'root_owner=0:0', image, `${sizeBytes / 1024}k`], { signal });
  return sizeBytes;
}

/**
 * Gives root's finished `source` to the owner as `output`. The copy runs as the owner and reads the source only
 * through the descriptor it inherits: the owner cannot reach the file by its path, and writes nothing with
 * root's rights. cp keeps the image sparse (it skips holes instead of reading them).
 */
export async function handOver(runner: ProcessRunner, source: string, output: string, owner: Owner, signal: AbortSignal): Promise<void> {
  const partial = `${output}.partial`;
  asOwner(owner, () => fs.rmSync(partial, { force: true }));
  // Readable by anyone holding the descriptor; the directory it is in stays closed to the owner.
  fs.chmodSync(source, 0o644);
  const fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const argv = [...ownerArgv(owner), 'cp', '--sparse=always', '/dev/stdin', partial];
    await runChecked(runner, argv[0]!, argv.slice(1), { signal, stdinFd: fd });
    asOwner(owner, () => fs.renameSync(partial, output));
  } catch (err) {
    asOwner(owner, () => fs.rmSync(partial, { force: true }));
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Removes a build directory, after unmounting what a debootstrap that was killed mid-build may have left mounted
 * in its tree (proc, sys, a bind of /dev): a recursive delete through such a mount would delete the host's files.
 * What cannot be unmounted keeps the directory; the next helper's sweep reports it (abandoned-image-builds.ts).
 */
export async function removeBuildDir(runner: ProcessRunner, workDir: string): Promise<void> {
  for (const mount of mountsInside(workDir)) await runner.run('umount', ['--lazy', mount]);
  if (mountsInside(workDir).length > 0) return;
  fs.rmSync(workDir, { recursive: true, force: true });
}
