// banger image delete NAME...: removes images no VM is made from.
import type { CliContext } from '../context.ts';
import { printJson, reportError } from '../output.ts';

export async function imageDelete(ctx: CliContext, names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  let status = 0;
  const deleted: string[] = [];
  for (const name of names) {
    try {
      deleted.push((await client.deleteImage(name)).name);
      if (!flags.json) ctx.output.out(`${deleted.at(-1)} deleted`);
    } catch (err) {
      status = reportError(ctx.output, err, { json: flags.json === true, command: 'banger image delete', subject: name });
    }
  }
  if (flags.json) printJson(ctx.output, deleted.map((name) => ({ name })));
  return status;
}
