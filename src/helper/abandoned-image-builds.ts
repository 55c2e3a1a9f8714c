// Image builds a dead bangerd-root left behind. A build's directory holds a root-owned debootstrap tree; the
// helper's finally removes it, but kill -9 (or a shutdown's process.exit mid-build) never runs that. Each build
// directory carries the pid of the helper that made it, so the next helper removes those whose helper is gone
// and leaves alone a build another helper, still alive, is running.
import fs from 'node:fs';
import path from 'node:path';

const PREFIX = 'banger-image-';
/** mkdtemp's template is the prefix plus six characters. */
const BUILD_DIR = /^banger-image-(\d+)-[A-Za-z0-9]{6}$/;

/** The mkdtemp prefix of a build run by the helper with pid `pid`. */
export function buildDirPrefix(pid: number): string {
  return `${PREFIX}${pid}-`;
}

export interface SweepOptions {
  /** Where builds run (buildDebianImage's workRoot). */
  workRoot: string;
  /** The process table (/proc): a pid without an entry there is gone. */
  procDir?: string;
  /** The mount table of the helper's mount namespace, which debootstrap's mounts live in. */
  mountInfo?: string;
  log(line: string): void;
}

/** Mount points, from a mountinfo file (field 5, with spaces and the like escaped as \ooo). */
function mountPoints(mountInfo: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(mountInfo, 'utf8');
  } catch {
    return [];
  }
  return text.split('\n').filter(Boolean).map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** What is mounted below `dir` (deepest first), in the mount table `mountInfo`. */
export function mountsInside(dir: string, mountInfo = '/proc/self/mountinfo'): string[] {
  return mountPoints(mountInfo).filter((m) => m.startsWith(`${dir}${path.sep}`)).sort((a, b) => b.length - a.length);
}

/**
 * Removes the build directories under `workRoot` whose helper is no longer running, and logs each one. Only
 * directories this process's user owns are touched (the work root may be a shared one such as /var/tmp), and
 * none with something mounted inside: debootstrap killed mid-build leaves proc, sys or a bind of /dev mounted in
 * its tree, and removing through that mount would delete the host's files. Returns the directories removed.
 */
export function removeAbandonedImageBuilds(options: SweepOptions): string[] {
  const procDir = options.procDir ?? '/proc';
  let names: string[];
  try {
    names = fs.readdirSync(options.workRoot);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const pid = BUILD_DIR.exec(name)?.[1];
    if (pid === undefined || fs.existsSync(path.join(procDir, pid))) continue;
    const dir = path.join(options.workRoot, name);
    const st = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory() || st.uid !== process.geteuid?.()) continue;
    const inside = mountsInside(dir, options.mountInfo);
    if (inside.length > 0) {
      options.log(`left the abandoned image build ${dir} of helper pid ${pid}: ${inside.join(', ')} ${inside.length === 1 ? 'is' : 'are'} mounted inside it; unmount with umount -R ${inside.join(' ')} and it goes at the next start`);
      continue;
    }
    try {
      fs.rmSync(dir, { recursive: true, force: true });
    } catch (err) {
      options.log(`cannot remove the abandoned image build ${dir} of helper pid ${pid}: ${(err as Error).message}`);
      continue;
    }
    options.log(`removed the abandoned image build ${dir} of helper pid ${pid}, which is no longer running`);
    removed.push(dir);
  }
  return removed;
}
