// Starting bangerd and bangerd-root in the background when nothing answers on their sockets.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import { connect } from '../protocol/jsonrpc.ts';
import { assertUsablePaths, type BangerPaths } from '../system/paths.ts';
import { isSocketAlive } from '../system/socket-server.ts';
import { BIN_DIR, helperArgs, helperStartCommand } from '../system/helper-command.ts';

async function waitForSocket(socketPath: string, child: { exited: boolean }, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !child.exited) {
    if (await isSocketAlive(socketPath)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return isSocketAlive(socketPath);
}

function tail(file: string, lines = 6): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function spawnDetached(program: string, args: string[], logFile: string): { exited: boolean } {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.openSync(logFile, 'a');
  const child = spawn(path.join(BIN_DIR, program), args, { detached: true, stdio: ['ignore', out, out], env: process.env });
  fs.closeSync(out);
  const state = { exited: false };
  child.on('exit', () => {
    state.exited = true;
  });
  child.unref();
  return state;
}

export interface StartReport {
  started: string[];
  warnings: string[];
}

/** Starts whichever of bangerd-root and bangerd is not answering. The helper needs root; without it, says what to run. */
export async function ensureDaemons(paths: BangerPaths): Promise<StartReport> {
  const report: StartReport = { started: [], warnings: [] };
  assertUsablePaths(paths);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  if (!(await isSocketAlive(paths.helperSocket))) {
    if (uid === 0) {
      const log = path.join(paths.logDir, 'bangerd-root.log');
      const child = spawnDetached('bangerd-root', helperArgs(paths, uid, gid), log);
      if (!(await waitForSocket(paths.helperSocket, child, 10_000))) {
        throw new BangerError('HELPER_UNAVAILABLE', `bangerd-root did not start:\n${tail(log)}`, { hint: `see ${log}` });
      }
      report.started.push('bangerd-root');
    } else {
      report.warnings.push(
        `the privileged helper is not running and needs root; start it with:\n  ${helperStartCommand(paths, uid, gid)}`,
      );
    }
  }
  if (!(await isSocketAlive(paths.daemonSocket))) {
    const log = path.join(paths.logDir, 'bangerd.log');
    const child = spawnDetached('bangerd', ['--foreground'], log);
    if (!(await waitForSocket(paths.daemonSocket, child, 15_000))) {
      throw new BangerError('DAEMON_UNAVAILABLE', `bangerd did not start:\n${tail(log)}`, { hint: `see ${log}, or run it in the foreground: bangerd --foreground` });
    }
    report.started.push('bangerd');
  }
  return report;
}

async function waitGone(socketPath: string): Promise<void> {
  for (let i = 0; i < 100 && (await isSocketAlive(socketPath)); i++) await new Promise((r) => setTimeout(r, 50));
}

/** Asks whichever of bangerd and bangerd-root answers to exit, and waits until they have; running VMs keep running. */
export async function stopDaemons(paths: BangerPaths): Promise<string[]> {
  const stopped: string[] = [];
  for (const [name, socketPath, method] of [['bangerd', paths.daemonSocket, 'daemon.shutdown'], ['bangerd-root', paths.helperSocket, 'helper.shutdown']] as const) {
    if (!(await isSocketAlive(socketPath))) continue;
    const connection = await connect(socketPath, { peer: { name, unavailable: name === 'bangerd' ? 'DAEMON_UNAVAILABLE' : 'HELPER_UNAVAILABLE' } });
    try {
      await connection.call(method, {});
    } finally {
      connection.close();
    }
    await waitGone(socketPath);
    stopped.push(name);
  }
  return stopped;
}
