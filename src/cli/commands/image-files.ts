// banger image make-bundle | register | promote: images to and from files.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import { resolvePaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { formatBytes, printJson, progressPrinter } from '../output.ts';
import { withCtrlC } from '../cancel.ts';

export interface MakeBundleFlags {
  rootfsTar?: string;
  fromImage?: string;
  name?: string;
  kernelRef?: string;
  out: string;
  json?: boolean;
}

/** stdin (`--rootfs-tar -`) into a file bangerd can read, in banger's cache; removed afterwards. */
async function stdinToFile(): Promise<string> {
  const dir = path.join(resolvePaths().cacheDir, 'tmp');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `rootfs-${process.pid}.tar`);
  const out = fs.createWriteStream(file, { mode: 0o600 });
  await new Promise<void>((resolve, reject) => {
    process.stdin.pipe(out);
    out.on('finish', resolve);
    out.on('error', reject);
    process.stdin.on('error', reject);
  });
  return file;
}

export async function imageMakeBundle(ctx: CliContext, flags: MakeBundleFlags): Promise<number> {
  if ((flags.rootfsTar === undefined) === (flags.fromImage === undefined)) {
    throw new BangerError('INVALID_ARGUMENT', 'give exactly one of --rootfs-tar FILE|- and --from-image NAME', { hint: 'banger image make-bundle --rootfs-tar rootfs.tar --name NAME --out NAME.tar.zst' });
  }
  if (flags.rootfsTar !== undefined && !flags.name) throw new BangerError('INVALID_ARGUMENT', '--rootfs-tar needs --name (the name the catalog lists)', { hint: 'add --name NAME' });
  const client = await ctx.client();
  const fromStdin = flags.rootfsTar === '-';
  const tar = flags.rootfsTar === undefined ? undefined : fromStdin ? await stdinToFile() : path.resolve(flags.rootfsTar);
  try {
    const result = await withCtrlC(ctx, () => ctx.output.err('banger: cancelling; no bundle is written'), (signal) => client.makeBundle({
      out: path.resolve(flags.out),
      ...(flags.name ? { name: flags.name } : {}), ...(flags.kernelRef ? { kernelRef: flags.kernelRef } : {}),
      ...(flags.fromImage ? { fromImage: flags.fromImage } : {}), ...(tar ? { rootfsTar: tar } : {}),
    }, { signal, ...(flags.json ? {} : { onProgress: progressPrinter(ctx.output) }) }));
    if (flags.json) printJson(ctx.output, result);
    else {
      ctx.output.out(`${result.path}\nsha256 ${result.sha256}\nsize   ${result.size} (${formatBytes(result.size)})`);
      ctx.output.err(`banger: catalog entry: ${JSON.stringify({ name: result.name, url: path.basename(result.path), sha256: result.sha256, size: result.size, kernel_ref: result.kernelRef })}`);
    }
    return 0;
  } finally {
    if (fromStdin && tar) fs.rmSync(tar, { force: true });
  }
}

export async function imageRegister(ctx: CliContext, name: string, flags: { rootfs: string; kernelRef?: string; kernel?: string; initrd?: string; json?: boolean }): Promise<number> {
  // Checked here before anything runs, and again in bangerd.
  if (flags.kernelRef !== undefined && (flags.kernel !== undefined || flags.initrd !== undefined)) {
    throw new BangerError('INVALID_ARGUMENT', '--kernel-ref and --kernel/--initrd exclude each other', { hint: 'name a kernel banger has (banger kernel list), or give a kernel file and its initrd' });
  }
  if ((flags.kernel === undefined) !== (flags.initrd === undefined)) {
    throw new BangerError('INVALID_ARGUMENT', '--kernel and --initrd go together', { hint: 'give both, or neither to boot the default kernel' });
  }
  const client = await ctx.client();
  const image = await withCtrlC(ctx, () => ctx.output.err('banger: cancelling; nothing is registered'), (signal) => client.registerImage({
    name, rootfs: path.resolve(flags.rootfs), ...(flags.kernelRef ? { kernelRef: flags.kernelRef } : {}),
    ...(flags.kernel ? { kernel: path.resolve(flags.kernel), initrd: path.resolve(flags.initrd!) } : {}),
  }, { signal, ...(flags.json ? {} : { onProgress: progressPrinter(ctx.output) }) }));
  if (flags.json) printJson(ctx.output, image);
  else ctx.output.out(`${image.name}: ${formatBytes(image.sizeBytes)}${image.kernelRef ? `, kernel ${image.kernelRef}` : ''}. Run it: banger vm run --image ${image.name}`);
  return 0;
}

export async function imagePromote(ctx: CliContext, vm: string, name: string, flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  const image = await withCtrlC(ctx, () => ctx.output.err('banger: cancelling; nothing is registered'), (signal) =>
    client.promoteImage(vm, name, { signal, ...(flags.json ? {} : { onProgress: progressPrinter(ctx.output) }) }));
  if (flags.json) printJson(ctx.output, image);
  else ctx.output.out(`${image.name}: ${formatBytes(image.sizeBytes)}, from VM ${vm}. Run it: banger vm run --image ${image.name}`);
  return 0;
}
