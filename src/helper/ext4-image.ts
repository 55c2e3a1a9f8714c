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
/** Memory-backed, for trees small enough (see workRootFor); also swept at start. */
export const MEMORY_WORK_ROOT = '/dev/shm';

/**
 * Where to unpack a tree of about `bytes`: in memory (/dev/shm) when it takes at most a quarter of the memory
 * available now, else on disk. The tree only lives until mkfs.ext4 has read it, and writing a few thousand files
 * to a disk file system costs several times what it costs in tmpfs (3.1 s against 0.6 s for a 250 MiB layer here).
 */
export function workRootFor(bytes: number, meminfo = '/proc/meminfo'): string {
  let available = 0;
  try {
    available = Number(/^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync(meminfo, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    // No /proc/meminfo: the disk.
  }
  return fs.existsSync(MEMORY_WORK_ROOT) && bytes <= available / 4 ? MEMORY_WORK_ROOT : DEFAULT_WORK_ROOT;
}

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
export async function writeExt4(runner: ProcessRunner, tree: string, image: string, minBytes: number, signal: AbortSignal, stdinFd?: number): Promise<number> {
  const sizeBytes = imageSizeFor(await treeSize(runner, tree), minBytes);
  await runChecked(runner, 'mkfs.ext4', ['-q', '-F', '-L', ROOT_LABEL, '-d', tree, '-E', 'root_owner=0:0', image, `${sizeBytes / 1024}k`], {
    signal, ...(stdinFd !== undefined ? { stdinFd } : {}),
  });
  return sizeBytes;
}

/**
 * Writes the owner's `output` with `write`, which gets a descriptor of it: the owner creates the file (through
 * OUTPUT.partial, renamed when complete), and root's programs reach it only through that descriptor (as
 * /dev/stdin), never by a path in the owner's directory. This saves handOver's copy of a finished image.
 */
export async function writeForOwner(owner: Owner, output: string, write: (fd: number) => Promise<void>): Promise<void> {
  const partial = `${output}.partial`;
  const fd = asOwner(owner, () => {
    fs.rmSync(partial, { force: true });
    return fs.openSync(partial, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
  });
  await completeAsOwner(owner, partial, output, fd, () => write(fd));
}

/**
 * Runs `work`, then renames the owner's `partial` to `output` as the owner; on failure removes `partial` instead.
 * `fd` (the descriptor the work wrote or read through) is closed either way.
 */
async function completeAsOwner(owner: Owner, partial: string, output: string, fd: number, work: () => Promise<void>): Promise<void> {
  try {
    await work();
    asOwner(owner, () => fs.renameSync(partial, output));
  } catch (err) {
    asOwner(owner, () => fs.rmSync(partial, { force: true }));
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/** Packs `tree` as writeExt4 does, into the file open on `fd` (see writeForOwner); returns its size. */
export function writeExt4ToFd(runner: ProcessRunner, tree: string, fd: number, minBytes: number, signal: AbortSignal): Promise<number> {
  return writeExt4(runner, tree, '/dev/stdin', minBytes, signal, fd);
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
  const argv = [...ownerArgv(owner), 'cp', '--sparse=always', '/dev/stdin', partial];
  await completeAsOwner(owner, partial, output, fd, async () => {
    await runChecked(runner, argv[0]!, argv.slice(1), { signal, stdinFd: fd });
  });
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
