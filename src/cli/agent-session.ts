// Runs a command in a guest through its agent (no sshd, no terminal): stdin, stdout and stderr are this process's,
// Ctrl-C, SIGTERM and SIGHUP go to the command's process group, and the exit status is the command's.
import { EventEmitter } from 'node:events';
import { execInGuest } from '../sdk/tunnel.ts';
import type { SignalSource } from './cancel.ts';

export interface AgentSessionOptions {
  cwd?: string;
  signals?: SignalSource;
}

export async function runViaAgent(vm: string, argv: string[], options: AgentSessionOptions = {}): Promise<number> {
  const source = options.signals ?? process;
  const forward = new EventEmitter();
  const handlers: Array<[NodeJS.Signals, () => void]> = [['SIGINT', () => forward.emit('signal', 'INT')], ['SIGTERM', () => forward.emit('signal', 'TERM')], ['SIGHUP', () => forward.emit('signal', 'HUP')]];
  for (const [name, fn] of handlers) source.on(name, fn);
  try {
    const result = await execInGuest(vm, argv, {
      stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, signals: forward, ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    return result.code;
  } finally {
    for (const [name, fn] of handlers) source.removeListener(name, fn);
    // Reading stdin keeps the process alive; the command is done with it.
    process.stdin.pause();
    process.stdin.destroy();
  }
}

export type RunViaAgent = typeof runViaAgent;
