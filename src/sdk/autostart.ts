// Starting bangerd and bangerd-root in the background when nothing answers on their sockets.
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import { connect } from '../protocol/jsonrpc.ts';
import { assertUsablePaths, type BangerPaths } from '../system/paths.ts';
import { isSocketAlive } from '../system/socket-server.ts';
import { configuredNetwork, helperArgs, helperStartCommand } from '../system/helper-command.ts';
import { pollUntil, systemClock, type Clock } from '../system/clock.ts';
import { logTail, spawnDetached, waitForSocket } from '../system/detached-start.ts';

export interface StartReport {
  started: string[];
  warnings: string[];
}

/** Starts whichever of bangerd-root and bangerd is not answering. The helper needs root; without it, says what to run. */
export async function ensureDaemons(paths: BangerPaths, clock: Clock = systemClock): Promise<StartReport> {
  const report: StartReport = { started: [], warnings: [] };
  assertUsablePaths(paths);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  if (!(await isSocketAlive(paths.helperSocket))) {
    if (uid === 0) {
      const log = path.join(paths.logDir, 'bangerd-root.log');
      const child = spawnDetached('bangerd-root', helperArgs(paths, uid, gid, configuredNetwork(paths)), log);
      if (!(await waitForSocket({ socketPath: paths.helperSocket, child, timeoutMs: 10_000, clock }))) {
        throw new BangerError('HELPER_UNAVAILABLE', `bangerd-root did not start:\n${logTail(log)}`, { hint: `see ${log}` });
      }
      report.started.push('bangerd-root');
    } else {
      report.warnings.push(
        `the privileged helper is not running and needs root; start it with:\n  ${helperStartCommand(paths, uid, gid, configuredNetwork(paths))}`,
      );
    }
  }
  if (!(await isSocketAlive(paths.daemonSocket))) {
    const log = path.join(paths.logDir, 'bangerd.log');
    const child = spawnDetached('bangerd', ['--foreground'], log);
    if (!(await waitForSocket({ socketPath: paths.daemonSocket, child, timeoutMs: 15_000, clock }))) {
      throw new BangerError('DAEMON_UNAVAILABLE', `bangerd did not start:\n${logTail(log)}`, { hint: `see ${log}, or run it in the foreground: bangerd --foreground` });
    }
    report.started.push('bangerd');
  }
  return report;
}

async function waitGone(socketPath: string, clock: Clock): Promise<void> {
  await pollUntil(async () => ((await isSocketAlive(socketPath)) ? undefined : true), { clock, timeoutMs: 5_000, intervalMs: 50 });
}

/** Asks whichever of bangerd and bangerd-root answers to exit, and waits until they have; running VMs keep running. */
export async function stopDaemons(paths: BangerPaths, clock: Clock = systemClock): Promise<string[]> {
  const stopped: string[] = [];
  for (const [name, socketPath, method] of [['bangerd', paths.daemonSocket, 'daemon.shutdown'], ['bangerd-root', paths.helperSocket, 'helper.shutdown']] as const) {
    if (!(await isSocketAlive(socketPath))) continue;
    const connection = await connect(socketPath, { peer: { name, unavailable: name === 'bangerd' ? 'DAEMON_UNAVAILABLE' : 'HELPER_UNAVAILABLE' } });
    try {
      await connection.call(method, {});
    } finally {
      connection.close();
    }
    await waitGone(socketPath, clock);
    stopped.push(name);
  }
  return stopped;
}
