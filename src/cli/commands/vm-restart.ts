// banger vm restart VM...: stops running VMs (as vm stop does) and boots them again, all at once.
import type { CliContext } from '../context.ts';
import { startEach, type StartFlags } from '../start-each.ts';

export function vmRestart(ctx: CliContext, refs: string[], flags: StartFlags): Promise<number> {
  return startEach(ctx, refs, flags, (client, id, params, options) => client.restartVm(id, params, options));
}
