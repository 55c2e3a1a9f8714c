// Starting bangerd or bangerd-root in the background and waiting for its socket: used by the SDK's autostart and
// by bangerd when it restarts a helper that died.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pollUntil, type Clock } from './clock.ts';
import { BIN_DIR } from './helper-command.ts';
import { isSocketAlive } from './socket-server.ts';

/** A started program; `exited` turns true when it ends (for a server: it failed to start). */
export interface StartedProgram {
  exited: boolean;
}

/** Starts one of bin/'s programs detached from this process, appending its output to `logFile`. */
export function spawnDetached(program: string, args: readonly string[], logFile: string): StartedProgram {
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.openSync(logFile, 'a');
  const state: StartedProgram = { exited: false };
  try {
    const child = spawn(path.join(BIN_DIR, program), args, { detached: true, stdio: ['ignore', out, out], env: process.env });
    child.on('exit', () => (state.exited = true));
    child.on('error', () => (state.exited = true));
    child.unref();
  } finally {
    fs.closeSync(out);
  }
  return state;
}

/** Whether the started server answers on its socket before `timeoutMs` passes or it exits. */
export async function waitForSocket(options: { socketPath: string; child: StartedProgram; timeoutMs: number; clock: Clock }): Promise<boolean> {
  const up = await pollUntil(async () => ((await isSocketAlive(options.socketPath)) ? true : options.child.exited ? false : undefined), {
    clock: options.clock,
    timeoutMs: options.timeoutMs,
    intervalMs: 50,
  });
  return up === true || (up === undefined && (await isSocketAlive(options.socketPath)));
}

/** The last lines of a log, for an error message; empty when there is none. */
export function logTail(file: string, lines = 6): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
