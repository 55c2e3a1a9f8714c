// banger vm delete VM...: stops VMs and removes everything they had, all at once.
import type { CliContext } from '../context.ts';
import { onEachVm } from '../each-vm.ts';

export async function vmDelete(ctx: CliContext, refs: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  return onEachVm(ctx, refs, { json: flags.json, op: (vm) => client.deleteVm(vm.id), done: (vm) => `${vm.name} deleted` });
}
