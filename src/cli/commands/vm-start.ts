// banger vm start VM...: boots stopped VMs, all at once, and waits for ssh in each.
import type { CliContext } from '../context.ts';
import { startEach, type StartFlags } from '../start-each.ts';

export function vmStart(ctx: CliContext, refs: string[], flags: StartFlags): Promise<number> {
  return startEach(ctx, refs, flags, (client, id, params, options) => client.startVm(id, params, options));
}
