// bangerd-root touches the owner's directories only with the owner's rights. Those directories are the owner's
// to change at any moment (swap a file for a symlink to /etc/shadow, say), so anything root did there itself,
// even after checking, could be turned against the host. Under the owner's effective ids the kernel applies the
// owner's permissions to every path step, and the worst a swapped path can do is hurt the owner.

export interface Owner {
  uid: number;
  gid: number;
}

/**
 * Runs `fn` synchronously with the owner's effective uid and gid, then restores root's. `fn` must be
 * synchronous: the switch covers the whole process, so nothing else may run meanwhile. When this process
 * already is the owner (bangerd-root serving root) it just runs `fn`.
 */
export function asOwner<T>(owner: Owner, fn: () => T): T {
  const euid = process.geteuid?.();
  const egid = process.getegid?.();
  if (euid === undefined || egid === undefined || (euid === owner.uid && egid === owner.gid)) return fn();
  if (euid !== 0) throw new Error(`cannot act as uid ${owner.uid}: this process is uid ${euid}, not root`);
  process.setegid!(owner.gid);
  process.seteuid!(owner.uid);
  try {
    return fn();
  } finally {
    process.seteuid!(0);
    process.setegid!(egid);
  }
}

/** The argv prefix that runs a program as the owner (empty when the owner is root). */
export function ownerArgv(owner: Owner): string[] {
  return owner.uid === 0 ? [] : ['setpriv', `--reuid=${owner.uid}`, `--regid=${owner.gid}`, '--init-groups', '--'];
}
