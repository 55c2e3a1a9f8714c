// banger vm show VM: one VM in full.
import type { CliContext } from '../context.ts';
import { describeVm } from '../describe-vm.ts';
import { printJson } from '../output.ts';

export async function vmShow(ctx: CliContext, ref: string, flags: { json?: boolean }): Promise<number> {
  const vm = await (await ctx.client()).showVm(ref);
  if (flags.json) printJson(ctx.output, vm);
  else ctx.output.out(describeVm(vm));
  return 0;
}
