// banger vm create: a long-lived VM, booted and reachable by ssh unless --no-start.
import type { CliContext } from '../context.ts';
import { createParams, type CreateFlags } from '../create-flags.ts';
import { describeVm } from '../describe-vm.ts';
import { printJson, progressPrinter } from '../output.ts';
import { withCtrlC } from '../cancel.ts';

export async function vmCreate(ctx: CliContext, flags: CreateFlags & { start?: boolean }): Promise<number> {
  // Before connecting: a mistyped flag must not start the daemon.
  const params = createParams(flags);
  const client = await ctx.client();
  const vm = await withCtrlC(
    ctx,
    () => ctx.output.err('banger: cancelling; the VM being created is removed'),
    (signal) => client.createVm({ ...params, start: flags.start !== false }, { signal, onProgress: progressPrinter(ctx.output) }),
  );
  if (flags.json) printJson(ctx.output, vm);
  else ctx.output.out(describeVm(vm));
  return 0;
}
