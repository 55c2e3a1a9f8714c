import os from 'node:os';
import path from 'node:path';

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
  sshDir: string;
  daemonSocket: string;
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
  const runDir = home
    ? path.join(home, 'run')
    : env.XDG_RUNTIME_DIR
      ? path.join(env.XDG_RUNTIME_DIR, 'banger')
      : uid === 0
        ? '/run/banger'
        : path.join(stateDir, 'run');
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
    sshDir: path.join(stateDir, 'ssh'),
    daemonSocket: path.join(runDir, 'bangerd.sock'),
    helperSocket: path.join(runDir, 'bangerd-root.sock'),
    daemonPidFile: path.join(runDir, 'bangerd.pid'),
    helperPidFile: path.join(runDir, 'bangerd-root.pid'),
  };
}
