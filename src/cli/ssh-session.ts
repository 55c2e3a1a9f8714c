// Runs the system ssh client attached to this terminal and reports its exit status.
import { spawn } from 'node:child_process';
import type { SshTarget } from '../protocol/methods.ts';
import { sshCommand } from '../protocol/ssh-command.ts';
import { BangerError } from '../protocol/errors.ts';
import { signalExitStatus } from './cancel.ts';

export interface SshSessionOptions {
  /** Ends the session: ssh gets SIGTERM, on which it closes the connection and restores the terminal. */
  signal?: AbortSignal;
  /** Guest directory the shell or command starts in (the guest's home when not given). */
  cwd?: string;
}

/** The remote argv that starts a login shell, or runs `command`, in `cwd`; the directory travels as an argument, never as code. */
export function inDirectory(cwd: string, command: string[] | null): string[] {
  if (command === null || command.length === 0) return ['sh', '-c', 'cd "$1" && exec "${SHELL:-/bin/sh}" -l', 'banger-shell', cwd];
  return ['sh', '-c', 'cd "$1" && shift && exec "$@"', 'banger-exec', cwd, ...command];
}

/** Exit status of the remote command (255 when ssh itself failed). SIGINT is left to ssh while it runs. */
export function runSsh(target: SshTarget, command: string[] | null, options: SshSessionOptions = {}): Promise<number> {
  const { signal } = options;
  if (signal?.aborted) {
    return Promise.reject(new BangerError('CANCELLED', 'the ssh session was not started: cancelled', { hint: 'see whether the VM is still there: banger vm list --all' }));
  }
  const interactive = command === null || command.length === 0;
  const tty = interactive ? Boolean(process.stdin.isTTY) : Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const remote = options.cwd ? inDirectory(options.cwd, command) : interactive ? null : command;
  const { command: program, args } = sshCommand(target, { tty, connectTimeoutSec: 10, control: 'reuse', ...(remote ? { command: remote } : {}) });
  return new Promise((resolve, reject) => {
    const ignore = (): void => undefined;
    process.on('SIGINT', ignore);
    const child = spawn(program, args, { stdio: 'inherit' });
    let killTimer: NodeJS.Timeout | undefined;
    const end = (): void => {
      child.kill('SIGTERM');
      // ssh exits on SIGTERM; this is for one that hangs.
      killTimer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      killTimer.unref();
    };
    signal?.addEventListener('abort', end, { once: true });
    const done = (): void => {
      process.removeListener('SIGINT', ignore);
      signal?.removeEventListener('abort', end);
      clearTimeout(killTimer);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      done();
      reject(err.code === 'ENOENT' ? new BangerError('MISSING_TOOL', `${program} is not installed`, { hint: 'apt-get install openssh-client' }) : err);
    });
    child.on('exit', (code, exitSignal) => {
      done();
      resolve(code ?? (exitSignal ? signalExitStatus(exitSignal) : 129));
    });
  });
}

export type RunSsh = typeof runSsh;
