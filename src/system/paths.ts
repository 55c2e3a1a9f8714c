import os from 'node:os';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';

/** Every place banger reads or writes. With BANGER_HOME all of them live under one directory. */
export interface BangerPaths {
  /** BANGER_HOME when set, else null (XDG places are used). */
  home: string | null;
  configFile: string;
  stateDir: string;
  cacheDir: string;
  runDir: string;
  logDir: string;
  db: string;
  vmsDir: string;
  imagesDir: string;
  kernelsDir: string;
  /** Verified OCI layer blobs, by digest (`image cache list|prune`). */
  blobCacheDir: string;
  sshDir: string;
  daemonSocket: string;
  /** Byte streams into guests (ssh ProxyCommand, agent exec); see src/daemon/tunnel-server.ts. */
  tunnelSocket: string;
  helperSocket: string;
  daemonPidFile: string;
  helperPidFile: string;
}

export function resolvePaths(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? 0): BangerPaths {
  const home = env.BANGER_HOME ? path.resolve(env.BANGER_HOME) : null;
  const userHome = env.HOME ?? os.homedir();
  const configDir = home ? path.join(home, 'config') : path.join(env.XDG_CONFIG_HOME ?? path.join(userHome, '.config'), 'banger');
  const stateDir = home ? path.join(home, 'state') : path.join(env.XDG_STATE_HOME ?? path.join(userHome, '.local', 'state'), 'banger');
  const cacheDir = home ? path.join(home, 'cache') : path.join(env.XDG_CACHE_HOME ?? path.join(userHome, '.cache'), 'banger');
  // Not under XDG_RUNTIME_DIR: daemons that systemd starts (banger system install) have no login session, and the
  // CLI must find their sockets where they made them whatever session it runs in.
  const runDir = home ? path.join(home, 'run') : uid === 0 ? '/run/banger' : path.join(stateDir, 'run');
  return {
    home,
    configFile: path.join(configDir, 'config.toml'),
    stateDir,
    cacheDir,
    runDir,
    logDir: path.join(stateDir, 'logs'),
    db: path.join(stateDir, 'banger.db'),
    vmsDir: path.join(stateDir, 'vms'),
    imagesDir: path.join(cacheDir, 'images'),
    kernelsDir: path.join(cacheDir, 'kernels'),
    blobCacheDir: path.join(cacheDir, 'oci'),
    sshDir: path.join(stateDir, 'ssh'),
    daemonSocket: path.join(runDir, 'bangerd.sock'),
    tunnelSocket: path.join(runDir, 'bangerd-tunnel.sock'),
    helperSocket: path.join(runDir, 'bangerd-root.sock'),
    daemonPidFile: path.join(runDir, 'bangerd.pid'),
    helperPidFile: path.join(runDir, 'bangerd-root.pid'),
  };
}


/** Longest VM socket file name: `<vmsDir>/<12-hex id>/ssh.ctl` plus the 17 characters ssh adds while creating it. */
const VM_SOCKET_SUFFIX = '/0123456789ab/ssh.ctl.0123456789abcdef'.length;
/** sun_path holds 108 bytes with the terminating NUL. */
const SOCKET_PATH_MAX = 107;

/**
 * Why banger cannot work under these paths, or null. QEMU options and ssh config lines cannot carry spaces,
 * commas, quotes or '%' in a path, and Unix sockets (QMP, ssh's shared connection) need short paths.
 */
export function pathsProblem(paths: BangerPaths): string | null {
  for (const [what, p] of [['state directory', paths.stateDir], ['cache directory', paths.cacheDir], ['run directory', paths.runDir]] as const) {
    const bad = /[\s,%"'\\]/.exec(p);
    if (bad) return `the ${what} ${JSON.stringify(p)} contains ${JSON.stringify(bad[0])}, which QEMU and ssh options cannot carry`;
  }
  const longest = Buffer.byteLength(paths.vmsDir) + VM_SOCKET_SUFFIX;
  if (longest > SOCKET_PATH_MAX) {
    return `the VM directory ${paths.vmsDir} is too long for the Unix sockets banger keeps there (${longest} bytes; at most ${SOCKET_PATH_MAX})`;
  }
  for (const socket of [paths.daemonSocket, paths.helperSocket]) {
    if (Buffer.byteLength(socket) > SOCKET_PATH_MAX) return `the socket path ${socket} is longer than ${SOCKET_PATH_MAX} bytes`;
  }
  return null;
}

/** INVALID_ARGUMENT, saying what to change, when banger cannot work under these paths (see pathsProblem). */
export function assertUsablePaths(paths: BangerPaths): void {
  const problem = pathsProblem(paths);
  if (problem) {
    throw new BangerError('INVALID_ARGUMENT', problem, { hint: 'set BANGER_HOME to a short path without spaces or punctuation, e.g. BANGER_HOME=/var/lib/banger' });
  }
}
