// Which paths bangerd-root accepts from bangerd: files in the owner's banger directories (state, cache, run),
// named plainly. Above a directory's root anything goes (a home reached through a symlink is still the owner's
// home); below it every component must be what it says: no `.` or `..`, no symlink anywhere, directories on
// the way, and at the end the owner's regular file (never a device node, FIFO or socket that root or QEMU
// would open). bangerd only ever sends such paths, so anything else is refused rather than resolved.
import fs from 'node:fs';
import path from 'node:path';
import type { Owner } from '../system/as-owner.ts';
import { lstatOrNull, str } from './helper-checks.ts';
import { refuse } from './refusal.ts';

export interface OwnedPathRequest {
  /** Real paths of the directories the path may be in, fixed when the helper started. */
  roots: readonly string[];
  /** The field, for messages: "kernel", "layer 0". */
  what: string;
  /**
   * true: an existing regular file of the owner's, to be read. false: a file to be (re)written by name, which
   * may be missing, or a regular file or socket left from before, but never a symlink or a directory.
   */
  mustExist: boolean;
  owner: Owner;
}

function kindOf(st: fs.Stats): string {
  if (st.isSymbolicLink()) return 'a symlink';
  if (st.isDirectory()) return 'a directory';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'a device node';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'a regular file';
}

/**
 * The path, once it is known to name a file inside one of the roots as described above; HELPER_REFUSED
 * (naming the value and the reason) otherwise. The result is the path with any symlink above the root
 * resolved, which is also what the caller must use.
 */
export function ownedPath(value: unknown, r: OwnedPathRequest): string {
  const p = str(value, r.what);
  if (!path.isAbsolute(p) || p.includes('\0') || p.includes(',') || /\s/.test(p)) refuse(`${r.what} must be an absolute path without commas or spaces`);
  const parts = p.split('/').slice(1);
  if (parts.some((c) => c === '.' || c === '..')) refuse(`${r.what} ${p} has a . or .. component; banger sends plain paths`);
  if (parts.some((c) => c === '')) refuse(`${r.what} ${p} must name a file (no empty components or trailing /)`);
  // Resolve from / until the path reaches one of the roots; symlinks are followed only up to there.
  let resolved = '/';
  let i = 0;
  for (; i < parts.length && !r.roots.includes(resolved); i++) {
    const next = path.join(resolved, parts[i]!);
    try {
      resolved = fs.realpathSync(next);
    } catch {
      // Every root exists, so a path that stops existing before reaching one is not inside any.
      refuse(`${r.what} ${p} is outside banger's directories`);
    }
    if (!r.roots.includes(resolved) && r.roots.some((root) => resolved.startsWith(`${root}/`))) {
      refuse(`${r.what} ${p} reaches banger's directories through a symlink (${next})`);
    }
  }
  const root = resolved;
  if (!r.roots.includes(root) || i === parts.length) refuse(`${r.what} ${p} is outside banger's directories`);
  // Below the root: plain directories, then the file itself, each looked at without following links.
  let here = root;
  for (; i < parts.length; i++) {
    here = path.join(here, parts[i]!);
    const st = lstatOrNull(here);
    const last = i === parts.length - 1;
    if (!last) {
      if (st === null) refuse(`the directory of ${r.what} ${p} does not exist`);
      if (!st.isDirectory()) refuse(`${r.what} ${p} passes through ${here}, which is ${kindOf(st)}, not a directory`);
      continue;
    }
    if (st === null) {
      if (r.mustExist) refuse(`${r.what} ${p} does not exist`);
    } else if (st.isSymbolicLink()) {
      refuse(`${r.what} ${p} is a symlink`);
    } else if (st.isDirectory()) {
      refuse(`${r.what} ${p} is a directory`);
    } else if (r.mustExist && !st.isFile()) {
      refuse(`${r.what} ${p} is ${kindOf(st)}, not a regular file`);
    } else if (!r.mustExist && !st.isFile() && !st.isSocket()) {
      refuse(`${r.what} ${p} is ${kindOf(st)}; banger writes only regular files and sockets there`);
    } else if (r.mustExist && st.uid !== r.owner.uid) {
      refuse(`${r.what} ${p} belongs to uid ${st.uid}, not to uid ${r.owner.uid} whose files this bangerd-root handles`);
    }
  }
  return here;
}
