// banger kernel pull|import|show|rm: kernels from the catalog or a directory, and what uses them.
import path from 'node:path';
import type { KernelInfo } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson, progressPrinter } from '../output.ts';
import { onEachName } from '../each-name.ts';
import { withCtrlC } from '../cancel.ts';

function describe(k: KernelInfo): string {
  return `${k.id}: ${k.version}, ${k.format === 'elf' ? 'ELF vmlinux' : 'bzImage'}`;
}

export async function kernelPull(ctx: CliContext, name: string, flags: { force?: boolean; json?: boolean }): Promise<number> {
  const client = await ctx.client();
  const kernel = await withCtrlC(ctx, () => ctx.output.err('banger: cancelling the pull; nothing is registered'), (signal) =>
    client.pullKernel(name, flags.force === true, { signal, ...(flags.json ? {} : { onProgress: progressPrinter(ctx.output) }) }));
  if (flags.json) printJson(ctx.output, kernel);
  else ctx.output.out(describe(kernel));
  return 0;
}

export async function kernelImport(ctx: CliContext, name: string, flags: { from: string; json?: boolean }): Promise<number> {
  const client = await ctx.client();
  const kernel = await withCtrlC(ctx, () => ctx.output.err('banger: cancelling the import; nothing is registered'), (signal) =>
    client.importKernel(name, path.resolve(flags.from), { signal, ...(flags.json ? {} : { onProgress: progressPrinter(ctx.output) }) }));
  if (flags.json) printJson(ctx.output, kernel);
  else ctx.output.out(describe(kernel));
  return 0;
}

export async function kernelShow(ctx: CliContext, name: string, flags: { json?: boolean }): Promise<number> {
  const { kernel, images, vms } = await (await ctx.client()).showKernel(name);
  if (flags.json) {
    printJson(ctx.output, { ...kernel, images, vms });
    return 0;
  }
  for (const [k, v] of [
    ['name', kernel.id], ['version', kernel.version], ['format', kernel.format === 'elf' ? 'ELF vmlinux' : 'bzImage'], ['source', kernel.source],
    ['created', kernel.createdAt.slice(0, 19)], ['kernel', kernel.kernelPath], ['initrd', kernel.initrdPath],
    ['images', images.join(', ') || '-'], ['vms', vms.join(', ') || '-'],
  ] as const) ctx.output.out(`${k.padEnd(9)}${v}`);
  return 0;
}

export async function kernelRm(ctx: CliContext, names: string[], flags: { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  return onEachName(ctx, names, { json: flags.json, command: 'banger kernel rm', op: (name) => client.deleteKernel(name), done: 'removed' });
}
