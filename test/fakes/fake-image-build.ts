// What buildDebianImage's tests share: its directories, and a runner whose debootstrap, du and mkfs.ext4 do a
// tiny build in milliseconds. The hand-over's copy (`cp`, behind setpriv unless the owner is root) is the test's.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_IMAGES } from '../../src/protocol/image-recipes.ts';
import { buildDebianImage } from '../../src/helper/debian-image-build.ts';
import type { Owner } from '../../src/system/as-owner.ts';
import { FakeProcessRunner, type FakeHandler } from './fake-process-runner.ts';

export const MIB = 1024 * 1024;

export interface ImageBuildDirs {
  dir: string;
  /** Root's private build directory. */
  workRoot: string;
  /** The owner's cache, where the image is handed over. */
  cache: string;
  keyring: string;
}

/** A fresh set of directories; the cache belongs to `owner`. Remove `dir` afterwards. */
export function imageBuildDirs(owner: Owner): ImageBuildDirs {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-recipe-'));
  fs.chmodSync(dir, 0o755);
  const workRoot = path.join(dir, 'build');
  fs.mkdirSync(workRoot, { mode: 0o700 });
  const cache = path.join(dir, 'cache');
  fs.mkdirSync(cache);
  if (owner.uid !== process.getuid?.()) fs.chownSync(cache, owner.uid, owner.gid);
  const keyring = path.join(dir, 'keyring.gpg');
  fs.writeFileSync(keyring, 'keys');
  return { dir, workRoot, cache, keyring };
}

/** debootstrap makes a tiny tree, du says 100 MiB, mkfs.ext4 writes an 8 MiB sparse image; `copy` does the hand-over. */
export function fakeImageBuildRunner(copy: FakeHandler): FakeProcessRunner {
  const runner = new FakeProcessRunner();
  // debootstrap SUITE TARGET MIRROR: a tiny tree with what customizeRootfs expects to find.
  runner.on('debootstrap', ({ args }) => {
    const tree = args.at(-2)!;
    fs.mkdirSync(path.join(tree, 'etc/ssh'), { recursive: true });
    fs.writeFileSync(path.join(tree, 'etc/ssh/ssh_host_rsa_key'), 'baked-in key');
    fs.mkdirSync(path.join(tree, 'var/cache/apt/archives'), { recursive: true });
    return { code: 0 };
  });
  runner.on('du', () => ({ stdout: `${100 * MIB}\t/x\n` }));
  runner.on('setpriv', copy).on('cp', copy);
  // mkfs.ext4 ... IMAGE SIZE: an 8 MiB sparse file with data in its first and last MiB.
  runner.on('mkfs.ext4', ({ args }) => {
    const image = args.at(-2)!;
    const fd = fs.openSync(image, 'w');
    fs.writeSync(fd, Buffer.alloc(MIB, 1), 0, MIB, 0);
    fs.writeSync(fd, Buffer.alloc(MIB, 2), 0, MIB, 7 * MIB);
    fs.closeSync(fd);
    return { code: 0 };
  });
  return runner;
}

/** Builds the default recipe into `output` with these directories. */
export function buildImage(o: { runner: FakeProcessRunner; dirs: ImageBuildDirs; owner: Owner; output: string; keyring?: string; signal?: AbortSignal }): Promise<{ sizeBytes: number }> {
  return buildDebianImage({
    runner: o.runner, recipe: DEFAULT_IMAGES.get('debian-bookworm')!, mirror: 'http://deb.debian.org/debian', output: o.output, owner: o.owner,
    signal: o.signal ?? new AbortController().signal, progress: () => undefined, workRoot: o.dirs.workRoot, keyring: o.keyring ?? o.dirs.keyring,
  });
}
