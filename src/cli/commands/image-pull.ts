// banger image pull REF [--name NAME] [--size SIZE]: an OCI image from its registry, made bootable and registered.
import { BangerError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { formatBytes, printJson, progressPrinter } from '../output.ts';
import { withCtrlC } from '../cancel.ts';

/** A size like 4G, 4096M or 4294967296 (bytes), as bytes. */
export function parseSize(value: string, flag: string): number {
  const m = /^(\d+)\s*([kKmMgGtT])?(?:i?[bB])?$/.exec(value);
  if (!m) throw new BangerError('INVALID_ARGUMENT', `${flag} must be a size like 4G or 4096M (got ${JSON.stringify(value)})`, { hint: `for example: ${flag} 4G` });
  const unit = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[(m[2] ?? '').toLowerCase() as 'k'] ?? 1;
  return Number(m[1]) * unit;
}

export async function imagePull(ctx: CliContext, ref: string, flags: { name?: string; size?: string; json?: boolean }): Promise<number> {
  const sizeBytes = flags.size === undefined ? undefined : parseSize(flags.size, '--size');
  const client = await ctx.client();
  const result = await withCtrlC(
    ctx,
    () => ctx.output.err('banger: cancelling the pull; nothing is registered (downloaded layers stay cached)'),
    (signal) => client.pullImage({ ref, ...(flags.name ? { name: flags.name } : {}), ...(sizeBytes !== undefined ? { sizeBytes } : {}) }, {
      signal, ...(flags.json ? {} : { onProgress: progressPrinter(ctx.output) }),
    }),
  );
  if (flags.json) {
    printJson(ctx.output, result);
    return 0;
  }
  const { image } = result;
  if (result.skipped.length > 0) ctx.output.err(`banger: not created (a VM's /dev is its own): ${result.skipped.slice(0, 5).join(', ')}${result.skipped.length > 5 ? ` and ${result.skipped.length - 5} more` : ''}`);
  if (result.droppedXattrs.length > 0) ctx.output.err(`banger: extended attributes not kept for: ${result.droppedXattrs.slice(0, 5).join(', ')}`);
  const how = image.boot === 'systemd' ? 'boots its own systemd' : "boots with banger's agent as init";
  ctx.output.out(result.upToDate
    ? `${image.name} is up to date (${image.ref})`
    : `${image.name}: ${formatBytes(image.sizeBytes)}, ${how}${image.hasSshd ? '' : ', no sshd'}; downloaded ${formatBytes(result.downloadedBytes)}. Run it: banger vm run --image ${image.name} -- CMD`);
  return 0;
}
