// bangerd-root: the privileged helper. Usage:
//   bangerd-root --owner UID:GID --state-dir DIR --cache-dir DIR --socket PATH
// It must run as root and serves only the owner (the socket is the owner's, mode 0600).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { serve } from '../protocol/jsonrpc.ts';
import { NodeProcessRunner } from '../system/process.ts';
import { listenUnix } from '../system/socket-server.ts';
import { HelperService } from './helper-service.ts';

function fail(message: string): never {
  process.stderr.write(`bangerd-root: ${message}\n`);
  process.exit(2);
}

const { values } = parseArgs({
  options: {
    owner: { type: 'string' },
    'state-dir': { type: 'string' },
    'cache-dir': { type: 'string' },
    socket: { type: 'string' },
    'pid-file': { type: 'string' },
  },
});
if (process.getuid?.() !== 0) fail('must run as root (it performs the privileged steps for bangerd): sudo bangerd-root ...');
const owner = /^(\d+):(\d+)$/.exec(values.owner ?? '');
if (!owner || !values['state-dir'] || !values['cache-dir'] || !values.socket) {
  fail('usage: bangerd-root --owner UID:GID --state-dir DIR --cache-dir DIR --socket PATH [--pid-file PATH]');
}
const scope = {
  owner: { uid: Number(owner[1]), gid: Number(owner[2]) },
  stateDir: path.resolve(values['state-dir']),
  cacheDir: path.resolve(values['cache-dir']),
  runDir: path.dirname(path.resolve(values.socket)),
  netnsDir: '/run/netns',
};
for (const dir of [scope.stateDir, scope.cacheDir, scope.runDir]) {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chownSync(dir, scope.owner.uid, scope.owner.gid);
}
const service = new HelperService(new NodeProcessRunner(), scope);
const server = await listenUnix(path.resolve(values.socket), { mode: 0o600, owner: scope.owner });
const pidFile = values['pid-file'];
const shutdown = (): void => {
  server.close();
  if (pidFile) fs.rmSync(pidFile, { force: true });
  process.exit(0);
};
serve(server, service.handlers(shutdown));
if (pidFile) fs.writeFileSync(pidFile, `${process.pid}\n`);
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
process.stderr.write(`bangerd-root: serving ${values.socket} for uid ${scope.owner.uid}\n`);
