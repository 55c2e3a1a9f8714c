// Commands that remove several named things one after the other (image delete a b, kernel rm a b): each name
// is tried, a failure is reported under its name and does not stop the rest, and the exit status is the last
// failure's. With --json, the names removed are printed as one list.
import type { CliContext } from './context.ts';
import { printJson, reportError } from './output.ts';

export async function onEachName(ctx: CliContext, names: readonly string[], o: { json?: boolean; command: string; op(name: string): Promise<{ name: string }>; done: string }): Promise<number> {
  let status = 0;
  const removed: string[] = [];
  for (const name of names) {
    try {
      removed.push((await o.op(name)).name);
      if (!o.json) ctx.output.out(`${removed.at(-1)} ${o.done}`);
    } catch (err) {
      status = reportError(ctx.output, err, { json: o.json === true, command: o.command, subject: name });
    }
  }
  if (o.json) printJson(ctx.output, removed.map((name) => ({ name })));
  return status;
}
