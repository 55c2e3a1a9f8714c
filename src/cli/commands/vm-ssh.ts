import type { CliContext } from '../context.ts';
import { runSsh } from '../ssh-session.ts';
import { holdSignals, sessionStatus } from '../cancel.ts';

/** banger vm ssh NAME [-- CMD]: a shell, or a command with its exit status. SIGTERM and SIGHUP end ssh cleanly. */
export async function vmSsh(ctx: CliContext, ref: string): Promise<number> {
  const target = await (await ctx.client()).sshTarget(ref);
  const held = holdSignals(ctx.signals ?? process);
  try {
    return sessionStatus(held, await (ctx.runSsh ?? runSsh)(target, ctx.guestCommand, { signal: held.signal }));
  } finally {
    held.release();
  }
}
