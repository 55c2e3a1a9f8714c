import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../system/config.ts';
import type { BangerPaths } from '../system/paths.ts';

export const BIN_DIR = fileURLToPath(new URL('../../bin/', import.meta.url));

/**
 * Arguments that start bangerd-root for one owner: that owner's directories, and the bridge, subnet and
 * namespace from the owner's config (and BANGER_NETNS) as they are now. The helper manages no other.
 */
export function helperArgs(paths: BangerPaths, uid: number, gid: number, env: NodeJS.ProcessEnv = process.env): string[] {
  const { network } = loadConfig(paths.configFile, env);
  return [
    '--owner', `${uid}:${gid}`, '--state-dir', paths.stateDir, '--cache-dir', paths.cacheDir, '--socket', paths.helperSocket,
    '--pid-file', paths.helperPidFile, '--bridge', network.bridge, '--subnet', network.subnet,
    ...(network.netns ? ['--netns', network.netns] : []),
  ];
}

/** The exact command a user runs to start the helper for themselves. */
export function helperStartCommand(paths: BangerPaths, uid: number, gid: number, env: NodeJS.ProcessEnv = process.env): string {
  return `sudo ${path.join(BIN_DIR, 'bangerd-root')} ${helperArgs(paths, uid, gid, env).join(' ')}`;
}
