import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, type BangerConfig } from '../system/config.ts';
import type { BangerPaths } from '../system/paths.ts';

export const BIN_DIR = fileURLToPath(new URL('../../bin/', import.meta.url));

/** The network settings in the owner's config (and BANGER_NETNS) as they are now. */
export function configuredNetwork(paths: BangerPaths, env: NodeJS.ProcessEnv = process.env): BangerConfig['network'] {
  return loadConfig(paths.configFile, env).network;
}

/**
 * Arguments that start bangerd-root for one owner: that owner's directories, and the bridge, subnet and
 * namespace it is to manage (bangerd passes the ones it runs with; others configuredNetwork). It manages no other.
 */
export function helperArgs(paths: BangerPaths, uid: number, gid: number, network: BangerConfig['network']): string[] {
  return [
    '--owner', `${uid}:${gid}`, '--state-dir', paths.stateDir, '--cache-dir', paths.cacheDir, '--socket', paths.helperSocket,
    '--pid-file', paths.helperPidFile, '--bridge', network.bridge, '--subnet', network.subnet,
    ...(network.netns ? ['--netns', network.netns] : []),
  ];
}

/** The exact command a user runs to start the helper for themselves. */
export function helperStartCommand(paths: BangerPaths, uid: number, gid: number, network: BangerConfig['network']): string {
  return `sudo ${path.join(BIN_DIR, 'bangerd-root')} ${helperArgs(paths, uid, gid, network).join(' ')}`;
}
