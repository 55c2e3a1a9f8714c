import type { CliContext } from '../context.ts';
import { runSsh } from '../ssh-session.ts';

/** banger vm ssh NAME [-- CMD]: a shell, or a command with its exit status. */
export async function vmSsh(ctx: CliContext, ref: string): Promise<number> {
  const target = await (await ctx.client()).sshTarget(ref);
  return runSsh(target, ctx.guestCommand);
}
