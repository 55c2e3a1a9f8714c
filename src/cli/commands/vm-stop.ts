// banger vm stop VM...: syncs and stops VMs, all at once.
import type { CliContext } from '../context.ts';
import { onEachVm } from '../each-vm.ts';

export async function vmStop(ctx: CliContext, refs: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  return onEachVm(ctx, refs, { json: flags.json, op: (vm) => client.stopVm(vm.id), done: (vm) => `${vm.name} stopped` });
}
