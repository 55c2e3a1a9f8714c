// Programs bangerd-root starts by a path bangerd names (QEMU, and any VMM after it) must be the host's, not the
// owner's: QEMU runs as the owner, but inside banger's network namespace, which only root can enter. A program
// counts as the host's when the file and every directory above it belong to root (or to the helper's own uid,
// for tests run without root) and nobody else can write to them, so no one else can replace it.
import fs from 'node:fs';
import path from 'node:path';
import { refuse } from './refusal.ts';

/** Why `file` (an absolute path) is not a program only root can change; null when it is. */
export function untrustedProgramProblem(file: string, helperUid = process.geteuid?.() ?? 0): string | null {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return `${file} does not exist`;
  }
  const trusted = (uid: number): boolean => uid === 0 || uid === helperUid;
  for (let at = real; ; at = path.dirname(at)) {
    const st = fs.statSync(at);
    if (!trusted(st.uid)) return `${at} belongs to uid ${st.uid}`;
    // A sticky directory (/tmp) lets others add entries but not replace the root-owned one checked below it.
    const othersWrite = (st.mode & 0o022) !== 0 && !(st.isDirectory() && (st.mode & 0o1000) !== 0);
    if (othersWrite) return `${at} is writable by others (mode ${(st.mode & 0o7777).toString(8)})`;
    if (at === '/') return null;
  }
}

/** `file` when only root can change it (see above); HELPER_REFUSED naming `what` otherwise. */
export function trustedProgram(file: string, what: string): string {
  const problem = untrustedProgramProblem(file);
  if (problem !== null) refuse(`${what} ${file} is not a program of the host's: ${problem}`);
  return file;
}
