// Runs the system ssh client attached to this terminal and reports its exit status.
import { spawn } from 'node:child_process';
import os from 'node:os';
import type { SshTarget } from '../protocol/methods.ts';
import { sshCommand } from '../protocol/ssh-command.ts';
import { BangerError } from '../protocol/errors.ts';

/** Exit status of the remote command (255 when ssh itself failed). SIGINT is left to ssh while it runs. */
export function runSsh(target: SshTarget, command: string[] | null): Promise<number> {
  const interactive = command === null || command.length === 0;
  const tty = interactive ? Boolean(process.stdin.isTTY) : Boolean(process.stdin.isTTY && process.stdout.isTTY);
  const { command: program, args } = sshCommand(target, { tty, connectTimeoutSec: 10, control: 'reuse', ...(interactive ? {} : { command }) });
  return new Promise((resolve, reject) => {
    const ignore = (): void => undefined;
    process.on('SIGINT', ignore);
    const child = spawn(program, args, { stdio: 'inherit' });
    child.on('error', (err: NodeJS.ErrnoException) => {
      process.removeListener('SIGINT', ignore);
      reject(err.code === 'ENOENT' ? new BangerError('MISSING_TOOL', `${program} is not installed`, { hint: 'apt-get install openssh-client' }) : err);
    });
    child.on('exit', (code, signal) => {
      process.removeListener('SIGINT', ignore);
      resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 1) : 1));
    });
  });
}
