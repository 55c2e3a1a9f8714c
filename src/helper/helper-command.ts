import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BangerPaths } from '../system/paths.ts';

export const BIN_DIR = fileURLToPath(new URL('../../bin/', import.meta.url));

/** Arguments that start bangerd-root for one owner and that owner's directories. */
export function helperArgs(paths: BangerPaths, uid: number, gid: number): string[] {
  return ['--owner', `${uid}:${gid}`, '--state-dir', paths.stateDir, '--cache-dir', paths.cacheDir, '--socket', paths.helperSocket, '--pid-file', paths.helperPidFile];
}

/** The exact command a user runs to start the helper for themselves. */
export function helperStartCommand(paths: BangerPaths, uid: number, gid: number): string {
  return `sudo ${path.join(BIN_DIR, 'bangerd-root')} ${helperArgs(paths, uid, gid).join(' ')}`;
}
