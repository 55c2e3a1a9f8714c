// How to reach a guest with the system ssh client. Shared by the CLI (interactive sessions, `vm run -- CMD`)
// and the daemon (readiness checks, sync before stop), so both use exactly the same options.
import type { SshTarget } from './methods.ts';

export interface SshCommandOptions {
  /** Allocate a terminal (-t) or not (-T). */
  tty: boolean;
  /** Never prompt; fail fast. For the daemon's own checks. */
  batch?: boolean;
  connectTimeoutSec?: number;
  /** The remote command as an argument vector; each argument is quoted for the remote shell. */
  command?: readonly string[];
  /**
   * With a target.controlPath: 'master' leaves this connection open for later ones (each new ssh handshake
   * into an emulated guest costs one to two seconds); 'reuse' rides on it when it exists and connects
   * normally when it does not.
   */
  control?: 'master' | 'reuse';
}

/** How long an idle shared connection stays open. */
export const CONTROL_PERSIST_SEC = 120;

const SAFE_ARG = /^[a-zA-Z0-9_@%+=:,./-]+$/;

/** Quotes one argument for a POSIX shell. */
export function shellQuote(arg: string): string {
  if (arg !== '' && SAFE_ARG.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

export function sshCommand(target: SshTarget, options: SshCommandOptions): { command: string; args: string[] } {
  const ssh = [
    'ssh',
    '-F', '/dev/null',
    '-i', target.keyPath,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${target.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `HostKeyAlias=${target.hostKeyAlias}`,
    '-o', 'LogLevel=ERROR',
    '-o', 'ServerAliveInterval=15',
    options.tty ? '-t' : '-T',
  ];
  if (target.controlPath && options.control) {
    ssh.push('-o', `ControlPath=${target.controlPath}`);
    if (options.control === 'master') ssh.push('-o', 'ControlMaster=auto', '-o', `ControlPersist=${CONTROL_PERSIST_SEC}`);
    else ssh.push('-o', 'ControlMaster=no');
  }
  if (options.batch) ssh.push('-o', 'BatchMode=yes');
  if (options.connectTimeoutSec) ssh.push('-o', `ConnectTimeout=${options.connectTimeoutSec}`);
  ssh.push(`${target.user}@${target.ip}`);
  if (options.command && options.command.length > 0) ssh.push('--', options.command.map(shellQuote).join(' '));
  const full = target.netns ? ['ip', 'netns', 'exec', target.netns, ...ssh] : ssh;
  return { command: full[0]!, args: full.slice(1) };
}

/**
 * A command the daemon runs in the guest without a terminal or prompts, over the shared connection when there is
 * one: what shipping a workspace, exporting it, its bootstrap and [[file_sync]] all use.
 */
export function guestBatchCommand(target: SshTarget, command: readonly string[], connectTimeoutSec = 10): { command: string; args: string[] } {
  return sshCommand(target, { tty: false, batch: true, connectTimeoutSec, control: 'reuse', command });
}

/** Closes the shared connection, if any (local only: it talks to the control socket, not the network). */
export function sshCloseMasterCommand(target: SshTarget): { command: string; args: string[] } | null {
  if (!target.controlPath) return null;
  return { command: 'ssh', args: ['-F', '/dev/null', '-o', `ControlPath=${target.controlPath}`, '-O', 'exit', `${target.user}@${target.ip}`] };
}
