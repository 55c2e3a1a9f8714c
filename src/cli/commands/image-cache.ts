// banger image cache list|prune: the verified OCI layer blobs pulls keep, so a pull again downloads nothing.
import type { CliContext } from '../context.ts';
import { formatBytes, printJson, table } from '../output.ts';

export async function imageCacheList(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const blobs = await (await ctx.client()).listImageCache();
  if (flags.json) printJson(ctx.output, blobs);
  else if (blobs.length === 0) ctx.output.out('the blob cache is empty');
  else {
    ctx.output.out(table(['DIGEST', 'SIZE', 'IMAGES'], blobs.map((b) => [b.digest.slice(0, 19), formatBytes(b.sizeBytes), b.images.join(', ') || '-'])));
    ctx.output.out(`${blobs.length} blobs, ${formatBytes(blobs.reduce((n, b) => n + b.sizeBytes, 0))}`);
  }
  return 0;
}

export async function imageCachePrune(ctx: CliContext, flags: { all?: boolean; json?: boolean }): Promise<number> {
  const result = await (await ctx.client()).pruneImageCache(flags.all ? { all: true } : {});
  if (flags.json) printJson(ctx.output, result);
  else ctx.output.out(`removed ${result.removed} blobs, ${formatBytes(result.freedBytes)}${flags.all ? '' : " (blobs of registered images kept; --all removes them too)"}`);
  return 0;
}
