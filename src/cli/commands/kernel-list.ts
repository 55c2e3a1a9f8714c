// banger kernel list [--available]: the guest kernels here, and with --available what the catalog offers too.
import type { CliContext } from '../context.ts';
import { formatBytes, printJson, table } from '../output.ts';

export async function kernelList(ctx: CliContext, flags: { json?: boolean; available?: boolean }): Promise<number> {
  const client = await ctx.client();
  const kernels = await client.listKernels();
  if (flags.available) {
    const offered = await client.kernelCatalog();
    const rows = [
      ...kernels.map((k) => ({ name: k.id, state: 'pulled' as const, version: k.version, format: k.format, size: null as number | null, about: k.source })),
      ...offered.filter((o) => o.state === 'available').map((o) => ({ name: o.name, state: o.state, version: '-', format: '-', size: o.sizeBytes, about: o.description })),
    ];
    if (flags.json) printJson(ctx.output, rows);
    else if (rows.length === 0) ctx.output.out('no kernels here, and the catalog offers none');
    else ctx.output.out(table(['NAME', 'STATE', 'VERSION', 'FORMAT', 'SIZE', 'ABOUT'], rows.map((r) => [r.name, r.state, r.version, r.format, r.size === null ? '-' : formatBytes(r.size), r.about])));
    return 0;
  }
  if (flags.json) printJson(ctx.output, kernels);
  else if (kernels.length === 0) ctx.output.out('no kernels yet (the host kernel is imported on first use: banger vm run; see also banger kernel list --available)');
  else ctx.output.out(table(['NAME', 'VERSION', 'FORMAT', 'SOURCE', 'CREATED'], kernels.map((k) => [k.id, k.version, k.format, k.source, k.createdAt.slice(0, 19)])));
  return 0;
}
