// The jail bangerd-root makes for the jailer: <base>/<exec name>/<jail id>/root, root's directories down to the
// jail's root, which is the owner's, as the jailer would leave it. The VM's files are hard-linked in with the
// owner's rights, never copied.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import { asOwner, type Owner } from '../system/as-owner.ts';
import { refuse } from './refusal.ts';
import { untrustedProgramProblem } from './trusted-program.ts';

/**
 * An empty jail at `chroot`: the last run's is removed first (its contents with the owner's rights, as the owner
 * could have put anything there; the directories, then empty, as root). Every directory above the jail's root
 * must be one only root can change, or root's mkdir, rmdir and chown there could be steered elsewhere.
 */
export function makeJail(o: { owner: Owner; jailBase: string; chroot: string }): void {
  const idDir = path.dirname(o.chroot);
  if (!fs.existsSync(o.jailBase)) {
    fs.mkdirSync(o.jailBase, { recursive: true });
    // Set apart from mkdir, whose mode bangerd-root's umask (077) would cut: the owner must pass through.
    fs.chmodSync(o.jailBase, 0o711);
  }
  const baseProblem = untrustedProgramProblem(o.jailBase);
  if (baseProblem !== null) refuse(`the jail base ${o.jailBase} is not a directory only root can change: ${baseProblem}`);
  if (fs.existsSync(o.chroot)) {
    emptyJail(o.owner, o.chroot);
    fs.rmdirSync(o.chroot);
  }
  if (fs.existsSync(idDir)) fs.rmdirSync(idDir);
  for (const dir of [path.dirname(idDir), idDir]) {
    if (fs.existsSync(dir)) continue;
    fs.mkdirSync(dir);
    // Traversable, so bangerd (the owner) reaches the API socket in the jail; nothing else to read there.
    fs.chmodSync(dir, 0o711);
  }
  const problem = untrustedProgramProblem(idDir);
  if (problem !== null) refuse(`the jail ${idDir} is not a directory only root can change: ${problem}`);
  fs.mkdirSync(o.chroot, { mode: 0o700 });
  fs.chownSync(o.chroot, o.owner.uid, o.owner.gid);
}

/** Removes what is in the jail's root (links, sockets, the pid file) with the owner's rights; the root stays. */
export function emptyJail(owner: Owner, chroot: string): void {
  asOwner(owner, () => {
    for (const entry of fs.readdirSync(chroot)) fs.rmSync(path.join(chroot, entry), { recursive: true, force: true });
  });
}

/** A hard link, made with the owner's rights: the jail sees the VM's own files, whatever their size, at no copying cost. */
export function linkIntoJail(owner: Owner, from: string, to: string): void {
  try {
    asOwner(owner, () => fs.linkSync(from, to));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EXDEV') {
      throw new BangerError('VMM_FAILED', `${from} cannot be linked into the jail ${path.dirname(to)}: they are on different file systems`, {
        hint: "keep banger's directories (BANGER_HOME) on the file system of the jail base (/srv/jailer)",
        cause: err,
      });
    }
    throw err;
  }
}
