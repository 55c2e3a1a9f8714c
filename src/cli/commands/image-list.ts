// banger image list: the images VMs boot from.
import type { CliContext } from '../context.ts';
import { formatBytes, printJson, table } from '../output.ts';

export async function imageList(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const images = await (await ctx.client()).listImages();
  if (flags.json) printJson(ctx.output, images);
  else if (images.length === 0) ctx.output.out('no images yet (the default image debian-bookworm is built on first use: banger vm run)');
  else ctx.output.out(table(['NAME', 'SIZE', 'SOURCE', 'CREATED'], images.map((i) => [i.name, formatBytes(i.sizeBytes), i.source, i.createdAt.slice(0, 19)])));
  return 0;
}
