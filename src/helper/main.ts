// bangerd-root: the privileged helper. Usage:
//   bangerd-root --owner UID:GID --state-dir DIR --cache-dir DIR --socket PATH --bridge NAME --subnet CIDR [--netns NAME] [--pid-file PATH] [--jail-base DIR]
// It must run as root and serves only the owner (the socket is the owner's, mode 0600). Whatever it does in the
// owner's directories it does with the owner's rights (see system/as-owner.ts).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { serve } from '../protocol/jsonrpc.ts';
import { asOwner, type Owner } from '../system/as-owner.ts';
import { NodeProcessRunner } from '../system/process.ts';
import { listenUnix } from '../system/socket-server.ts';
import { removeAbandonedImageBuilds } from './abandoned-image-builds.ts';
import { DEFAULT_WORK_ROOT, MEMORY_WORK_ROOT } from './ext4-image.ts';
import { HelperService, networkScopeProblem } from './helper-service.ts';
import { versionLine } from '../version.ts';

const USAGE = 'usage: bangerd-root --owner UID:GID --state-dir DIR --cache-dir DIR --socket PATH --bridge NAME --subnet A.B.C.0/24 [--netns NAME] [--pid-file PATH] [--jail-base DIR]';

function fail(message: string): never {
  process.stderr.write(`bangerd-root: ${message}\n`);
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      owner: { type: 'string' },
      'state-dir': { type: 'string' },
      'cache-dir': { type: 'string' },
      socket: { type: 'string' },
      'pid-file': { type: 'string' },
      bridge: { type: 'string' },
      subnet: { type: 'string' },
      netns: { type: 'string' },
      // Where Firecracker's jails go (a directory only root can change); the jailer's /srv/jailer by default.
      'jail-base': { type: 'string' },
      version: { type: 'boolean' },
    },
  }));
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`);
}
if (values.version) {
  process.stdout.write(`${versionLine('bangerd-root')}\n`);
  process.exit(0);
}
if (process.getuid?.() !== 0) fail('must run as root (it performs the privileged steps for bangerd): sudo bangerd-root ...');
const ownerMatch = /^(\d+):(\d+)$/.exec(values.owner ?? '');
if (!ownerMatch || !values['state-dir'] || !values['cache-dir'] || !values.socket || !values.bridge || !values.subnet) fail(USAGE);
const owner: Owner = { uid: Number(ownerMatch[1]), gid: Number(ownerMatch[2]) };
const network = { bridge: values.bridge, subnet: values.subnet, netns: values.netns ?? null };
const problem = networkScopeProblem(network);
if (problem) fail(problem);
process.umask(0o077);

/** The owner's directory, made with the owner's rights if missing; its real path, fixed from here on. */
function ownersDir(dir: string): string {
  try {
    asOwner(owner, () => fs.mkdirSync(dir, { recursive: true, mode: 0o700 }));
  } catch (err) {
    fail(`cannot create ${dir} as uid ${owner.uid}: ${(err as Error).message}`);
  }
  const real = fs.realpathSync(dir);
  const st = fs.statSync(real);
  if (!st.isDirectory() || st.uid !== owner.uid) fail(`${dir} (${real}) must be a directory owned by uid ${owner.uid}`);
  return real;
}

const socketPath = path.resolve(values.socket);
const scope = {
  owner,
  stateDir: ownersDir(path.resolve(values['state-dir'])),
  cacheDir: ownersDir(path.resolve(values['cache-dir'])),
  runDir: ownersDir(path.dirname(socketPath)),
  netnsDir: '/run/netns',
  procDir: '/proc',
  network,
  ...(values['jail-base'] ? { jailBase: path.resolve(values['jail-base']) } : {}),
};
// Before serving, so no build of this helper's can be running yet; another live helper's builds are kept.
for (const workRoot of [DEFAULT_WORK_ROOT, MEMORY_WORK_ROOT]) {
  if (fs.existsSync(workRoot)) removeAbandonedImageBuilds({ workRoot, procDir: scope.procDir, log: (line) => process.stderr.write(`bangerd-root: ${line}\n`) });
}
const service = new HelperService(new NodeProcessRunner(), scope);
const asTheOwner = <T>(fn: () => T): T => asOwner(owner, fn);
const server = await listenUnix(socketPath, { mode: 0o600, as: asTheOwner }).catch((err: unknown) => fail((err as Error).message));
const pidFile = values['pid-file'] ? path.resolve(values['pid-file']) : null;
const shutdown = (): void => {
  server.close();
  if (pidFile) asTheOwner(() => fs.rmSync(pidFile, { force: true }));
  process.exit(0);
};
serve(server, service.handlers(shutdown), { identity: { name: 'bangerd-root', unavailable: 'HELPER_UNAVAILABLE' } });
if (pidFile) {
  asTheOwner(() => {
    fs.rmSync(pidFile, { force: true });
    const fd = fs.openSync(pidFile, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
    fs.writeSync(fd, `${process.pid}\n`);
    fs.closeSync(fd);
  });
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stderr.write(`bangerd-root: serving ${socketPath} for uid ${owner.uid} (bridge ${network.bridge}, ${network.subnet}${network.netns ? `, netns ${network.netns}` : ''})\n`);
