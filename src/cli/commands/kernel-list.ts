// banger kernel list: the guest kernels.
import type { CliContext } from '../context.ts';
import { printJson, table } from '../output.ts';

export async function kernelList(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const kernels = await (await ctx.client()).listKernels();
  if (flags.json) printJson(ctx.output, kernels);
  else if (kernels.length === 0) ctx.output.out('no kernels yet (the host kernel is imported on first use: banger vm run)');
  else ctx.output.out(table(['ID', 'VERSION', 'SOURCE', 'CREATED'], kernels.map((k) => [k.id, k.version, k.source, k.createdAt.slice(0, 19)])));
  return 0;
}
