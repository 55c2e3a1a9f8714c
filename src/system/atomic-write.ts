import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** The mode of an existing file, or null when there is none. */
function modeOf(file: string): number | null {
  try {
    return fs.statSync(file).mode & 0o7777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Replaces `file` with `data` so that a reader (ssh, say) sees the old content or the new, never part of either:
 * the data goes to a temporary file beside it, which is then renamed over it. The file keeps its mode; a new one
 * gets `mode`. A symlink is followed and its target replaced, so a config kept in a dotfiles checkout stays there.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o600): void {
  let target = file;
  try {
    target = fs.realpathSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const finalMode = modeOf(target) ?? mode;
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
  const fd = fs.openSync(temp, 'wx', 0o600);
  let open = true;
  try {
    fs.writeFileSync(fd, data);
    // Set after creation: the umask must not take bits away from the mode the file had.
    fs.fchmodSync(fd, finalMode);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    open = false;
    fs.renameSync(temp, target);
  } catch (err) {
    if (open) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    throw err;
  }
}
