// Runs a command in a guest through its agent (no sshd, no terminal): stdin, stdout and stderr are this process's,
// Ctrl-C, SIGTERM and SIGHUP go to the command's process group, and the exit status is the command's.
import { EventEmitter } from 'node:events';
import { BangerError } from '../protocol/errors.ts';
import { execInGuest } from '../sdk/tunnel.ts';
import type { SignalSource } from './cancel.ts';

export interface AgentSessionOptions {
  cwd?: string;
  signals?: SignalSource;
  /** Starts bangerd when its tunnel socket does not answer; the command is then tried once more. */
  startDaemon?: () => Promise<void>;
}

export async function runViaAgent(vm: string, argv: string[], options: AgentSessionOptions = {}): Promise<number> {
  const source = options.signals ?? process;
  const forward = new EventEmitter();
  const handlers: Array<[NodeJS.Signals, () => void]> = [['SIGINT', () => forward.emit('signal', 'INT')], ['SIGTERM', () => forward.emit('signal', 'TERM')], ['SIGHUP', () => forward.emit('signal', 'HUP')]];
  for (const [name, fn] of handlers) source.on(name, fn);
  const run = () => execInGuest(vm, argv, {
    stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, signals: forward, ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  try {
    try {
      return (await run()).code;
    } catch (err) {
      // Nothing was started in the guest: the tunnel itself did not answer.
      if (!(err instanceof BangerError && err.code === 'DAEMON_UNAVAILABLE' && options.startDaemon && /cannot reach bangerd's tunnel socket/.test(err.message))) throw err;
      await options.startDaemon();
      return (await run()).code;
    }
  } finally {
    for (const [name, fn] of handlers) source.removeListener(name, fn);
    // Reading stdin keeps the process alive; the command is done with it.
    process.stdin.pause();
    process.stdin.destroy();
  }
}

export type RunViaAgent = typeof runViaAgent;
