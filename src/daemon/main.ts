// bangerd entry point. It always runs in the foreground; `banger daemon start` (or systemd) puts it in the
// background. --foreground is accepted for clarity in development.
import { parseArgs } from 'node:util';
import { BangerError, messageOf } from '../protocol/errors.ts';
import { loadConfig } from '../system/config.ts';
import { assertUsablePaths, resolvePaths } from '../system/paths.ts';
import { NodeProcessRunner } from '../system/process.ts';
import { Daemon } from './daemon.ts';
import { checkMigrations, checkStore } from '../store/store.ts';
import { versionLine } from '../version.ts';

const { values } = parseArgs({
  options: {
    foreground: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' }, 'check-migrations': { type: 'boolean' }, 'check-store': { type: 'boolean' },
  },
});
if (values.help) {
  process.stdout.write('usage: bangerd [--foreground] | --version | --check-migrations | --check-store\nServes banger\'s API on $BANGER_HOME/run/bangerd.sock (/run/banger for root, else STATE_DIR/run).\n'
    + '--check-migrations: how this bangerd stands to the store, without writing it: exit 0 current, 1 it will migrate it, 2 incompatible (newer).\n'
    + '--check-store: the same and SQLite\'s integrity check, as JSON (for banger doctor).\n');
  process.exit(0);
}
if (values.version) {
  process.stdout.write(`${versionLine('bangerd')}\n`);
  process.exit(0);
}
if (values['check-migrations']) {
  const check = checkMigrations(resolvePaths().db);
  process.stdout.write(`${check.message}\n`);
  process.exit(check.status);
}
if (values['check-store']) {
  process.stdout.write(`${JSON.stringify({ db: resolvePaths().db, ...checkStore(resolvePaths().db) })}\n`);
  process.exit(0);
}
try {
  const paths = resolvePaths();
  assertUsablePaths(paths);
  const config = loadConfig(paths.configFile);
  if (config.network.netns && process.getuid?.() !== 0) {
    throw new BangerError('INVALID_ARGUMENT', `network namespace ${config.network.netns} is configured, but reaching guests inside it needs bangerd to run as root`, {
      hint: 'run bangerd as root, or unset BANGER_NETNS / network.netns',
    });
  }
  const stop = (): void => void daemon.close().then(() => process.exit(0));
  const daemon = new Daemon({ paths, config, runner: new NodeProcessRunner(), onShutdown: stop });
  await daemon.listen();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stderr.write(`bangerd ${process.pid}: serving ${paths.daemonSocket}${config.network.netns ? ` (guests in netns ${config.network.netns})` : ''}\n`);
} catch (err) {
  process.stderr.write(`bangerd: ${messageOf(err)}\n`);
  if (err instanceof BangerError && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(1);
}
