// banger vm exec VM -- CMD ARGS: runs a command in a running VM, in its workspace when it has one (else /root),
// streaming its output and exiting with its status. Through the guest agent (no ssh handshake, works without
// sshd) unless a terminal is attached, when ssh gives the command a terminal of its own.
import { BangerError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { runSsh } from '../ssh-session.ts';
import { holdSignals, sessionStatus } from '../cancel.ts';
import { runViaAgent } from '../agent-session.ts';

export type ExecVia = 'auto' | 'agent' | 'ssh';

export interface ExecFlags {
  via?: string;
}

/** `auto`: the agent, unless stdin and stdout are both terminals (then ssh, which allocates one). */
export function chooseVia(via: string | undefined, terminal: boolean): 'agent' | 'ssh' {
  const v = via ?? 'auto';
  if (v !== 'auto' && v !== 'agent' && v !== 'ssh') {
    throw new BangerError('INVALID_ARGUMENT', `--via must be auto, agent or ssh, not ${JSON.stringify(v)}`, { hint: 'auto uses the guest agent unless a terminal is attached' });
  }
  if (v === 'auto') return terminal ? 'ssh' : 'agent';
  return v;
}

export async function vmExec(ctx: CliContext, ref: string, flags: ExecFlags = {}): Promise<number> {
  const command = ctx.guestCommand;
  if (command === null || command.length === 0) {
    throw new BangerError('INVALID_ARGUMENT', 'vm exec needs a command after --', { hint: `for example: banger vm exec ${ref} -- make test; for a shell: banger vm ssh ${ref}` });
  }
  const via = chooseVia(flags.via, Boolean(process.stdin.isTTY && process.stdout.isTTY));
  if (via === 'agent') {
    // Straight to bangerd's tunnel socket, which resolves the VM itself: no JSON-RPC round trip first. The
    // client (which starts bangerd when it is not running) is only needed when nothing answers there.
    return (ctx.runViaAgent ?? runViaAgent)(ref, command, { ...(ctx.signals ? { signals: ctx.signals } : {}), startDaemon: async () => void (await ctx.client()) });
  }
  const target = await (await ctx.client()).sshTarget(ref);
  const held = holdSignals(ctx.signals ?? process);
  try {
    return sessionStatus(held, await (ctx.runSsh ?? runSsh)(target, command, { signal: held.signal, cwd: target.workdir }));
  } finally {
    held.release();
  }
}
