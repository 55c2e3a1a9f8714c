// banger vm exec VM -- CMD ARGS: runs a command in a running VM, in its workspace when it has one (else /root),
// streaming its output and exiting with its status.
import { BangerError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { runSsh } from '../ssh-session.ts';
import { holdSignals, sessionStatus } from '../cancel.ts';

export async function vmExec(ctx: CliContext, ref: string): Promise<number> {
  const command = ctx.guestCommand;
  if (command === null || command.length === 0) {
    throw new BangerError('INVALID_ARGUMENT', 'vm exec needs a command after --', { hint: `for example: banger vm exec ${ref} -- make test; for a shell: banger vm ssh ${ref}` });
  }
  const target = await (await ctx.client()).sshTarget(ref);
  const held = holdSignals(ctx.signals ?? process);
  try {
    return sessionStatus(held, await (ctx.runSsh ?? runSsh)(target, command, { signal: held.signal, cwd: target.workdir }));
  } finally {
    held.release();
  }
}
