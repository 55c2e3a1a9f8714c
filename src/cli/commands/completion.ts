// banger completion bash|zsh|fish: prints the shell's completion script (how to install it: the README).
import { BangerError } from '../../protocol/errors.ts';
import { completionScript, SHELLS, type Shell } from '../completion-scripts.ts';
import type { CliContext } from '../context.ts';

export async function completion(ctx: CliContext, shell: string): Promise<number> {
  if (!SHELLS.includes(shell as Shell)) {
    throw new BangerError('INVALID_ARGUMENT', `banger has no completion script for ${JSON.stringify(shell)}`, {
      hint: `name one of ${SHELLS.join('|')}, e.g. source <(banger completion bash)`,
    });
  }
  ctx.output.out(completionScript(shell as Shell));
  return 0;
}
