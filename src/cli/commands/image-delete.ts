// banger image delete NAME...: removes images no VM is made from.
import type { CliContext } from '../context.ts';
import { onEachName } from '../each-name.ts';

export async function imageDelete(ctx: CliContext, names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  return onEachName(ctx, names, { json: flags.json, command: 'banger image delete', op: (name) => client.deleteImage(name), done: 'deleted' });
}
