// What an installed banger looks like on disk, for `banger update` (which swaps it) and `banger doctor` (which
// compares it with the running CLI). A release (scripts/release.sh) unpacks to one directory per version:
//
//   PREFIX/versions/0.2.0/     bin/ dist/ dist-agent/ node_modules/ package.json ...   (one release, never edited)
//   PREFIX/current  -> versions/0.2.0      what bin links and services run; swapped atomically by update
//   PREFIX/previous -> versions/0.1.0      what update rolls back to
//   /usr/local/bin/banger -> PREFIX/current/bin/banger   (and bangerd, bangerd-root), made by the release's install.sh
//
// A checkout of the repository is not an install: it updates with git.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory this banger runs from: a release's version directory, or a checkout. */
export const RUNNING_ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

export interface InstallLayout {
  prefix: string;
  versionsDir: string;
  /** The `current` link, and the version directory it points at (null when it is missing or dangles). */
  currentLink: string;
  current: string | null;
  previousLink: string;
  previous: string | null;
}

/** The version directory a link points at, resolved; null when there is no such link or it dangles. */
function linkTarget(link: string): string | null {
  try {
    if (!fs.lstatSync(link).isSymbolicLink()) return null;
    return fs.realpathSync(link);
  } catch {
    return null;
  }
}

export function layoutAt(prefix: string): InstallLayout {
  const currentLink = path.join(prefix, 'current');
  const previousLink = path.join(prefix, 'previous');
  return { prefix, versionsDir: path.join(prefix, 'versions'), currentLink, current: linkTarget(currentLink), previousLink, previous: linkTarget(previousLink) };
}

/**
 * The install `root` belongs to: when root is PREFIX/versions/V, the layout under PREFIX (whether or not
 * `current` points at root); null when root is a checkout.
 */
export function installOf(root: string = RUNNING_ROOT): InstallLayout | null {
  const real = fs.realpathSync(root);
  const versions = path.dirname(real);
  if (path.basename(versions) !== 'versions') return null;
  return layoutAt(path.dirname(versions));
}

/** The version and build a release directory holds (its package.json and dist/build-info.json). */
export function releaseInfo(dir: string): { version: string; commit: string | null; builtAt: string | null } | null {
  try {
    const { version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string };
    let stamp: { commit?: unknown; builtAt?: unknown } = {};
    try {
      stamp = JSON.parse(fs.readFileSync(path.join(dir, 'dist', 'build-info.json'), 'utf8')) as typeof stamp;
    } catch {
      // Not built: a development tree.
    }
    return { version, commit: typeof stamp.commit === 'string' ? stamp.commit : null, builtAt: typeof stamp.builtAt === 'string' ? stamp.builtAt : null };
  } catch {
    return null;
  }
}

/** Points `link` at `target` (relative to the link's directory) in one rename, so no reader sees it missing. */
export function swapLink(link: string, target: string): void {
  const tmp = `${link}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(path.relative(path.dirname(link), target), tmp);
  fs.renameSync(tmp, link);
}

/** What `banger system install` records in PREFIX/install.json: what it installed, for whom, and where. */
export interface InstallRecord {
  version: string;
  commit: string | null;
  builtAt: string | null;
  owner: { name: string; uid: number; gid: number };
  unitDir: string;
  units: string[];
  binDir: string;
  installedAt: string;
  /** BANGER_HOME and BANGER_NETNS the units run with. */
  environment: Record<string, string>;
}

export function recordPath(prefix: string): string {
  return path.join(prefix, 'install.json');
}

/** The install record under `prefix`, or null when banger was not installed there with systemd units. */
export function readInstallRecord(prefix: string): InstallRecord | null {
  try {
    return JSON.parse(fs.readFileSync(recordPath(prefix), 'utf8')) as InstallRecord;
  } catch {
    return null;
  }
}
