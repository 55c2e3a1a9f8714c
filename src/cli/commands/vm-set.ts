// banger vm set VM --cpus N --memory SIZE --disk SIZE: a stopped VM's size, from its next boot.
import { BangerError } from '../../protocol/errors.ts';
import type { VmSetParams } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { describeVm } from '../describe-vm.ts';
import { printJson } from '../output.ts';
import { sizeParams, type SizeFlags } from '../size-flags.ts';

export interface SetFlags extends SizeFlags {
  json?: boolean;
}

/** Only the sizes given; at least one is required. */
export function setParams(ref: string, flags: SetFlags): Omit<VmSetParams, 'ref'> {
  const size: Omit<VmSetParams, 'ref'> = sizeParams(flags);
  if (Object.keys(size).length === 0) {
    throw new BangerError('INVALID_ARGUMENT', 'vm set needs --cpus, --memory or --disk', { hint: `e.g. banger vm set ${ref} --cpus 2 --memory 4G --disk 16` });
  }
  return size;
}

export async function vmSet(ctx: CliContext, ref: string, flags: SetFlags): Promise<number> {
  // Before connecting: a mistyped flag must not start the daemon.
  const size = setParams(ref, flags);
  const vm = await (await ctx.client()).setVm(ref, size);
  if (flags.json) printJson(ctx.output, vm);
  else ctx.output.out(`${describeVm(vm)}\n(the new size applies from its next boot: banger vm start ${vm.name})`);
  return 0;
}
