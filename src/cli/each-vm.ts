import type { CliContext } from './context.ts';
import { printJson, reportError } from './output.ts';

/**
 * Runs `op` on every VM at once and waits for all of them: prints each success and each failure (with its hint),
 * and returns the exit status of the first failure in the order given, or 0.
 */
export async function onEachVm<T extends { name: string }>(ctx: CliContext, refs: string[], options: { json?: boolean; done: string; op: (ref: string) => Promise<T> }): Promise<number> {
  const settled = await Promise.allSettled(refs.map((ref) => options.op(ref)));
  const results: T[] = [];
  let status = 0;
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') {
      results.push(outcome.value);
      if (!options.json) ctx.output.out(`${outcome.value.name} ${options.done}`);
      return;
    }
    const code = reportError(ctx.output, outcome.reason, { ...(refs.length > 1 ? { subject: refs[i]! } : {}), json: options.json === true });
    if (status === 0) status = code;
  });
  if (options.json) printJson(ctx.output, results);
  return status;
}
