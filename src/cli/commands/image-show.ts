// banger image show NAME|REF: one image, how it boots and runs commands, and the VMs made from it.
import type { CliContext } from '../context.ts';
import { formatBytes, printJson } from '../output.ts';

export async function imageShow(ctx: CliContext, name: string, flags: { json?: boolean }): Promise<number> {
  const { image, vms } = await (await ctx.client()).showImage(name);
  if (flags.json) {
    printJson(ctx.output, { ...image, vms });
    return 0;
  }
  const rows: Array<[string, string]> = [
    ['name', image.name],
    ['source', image.source],
    ['size', formatBytes(image.sizeBytes)],
    ['created', image.createdAt.slice(0, 19)],
    ['boot', image.boot === 'systemd' ? "systemd (the image's own init)" : "banger's agent as init (the image has no systemd)"],
    ['sshd', image.hasSshd ? 'yes' : 'no (vm ssh cannot work; use vm exec)'],
  ];
  if (image.digest) rows.push(['digest', image.digest]);
  if (image.run) {
    rows.push(['user', `${image.run.user ?? 'root'} (${image.run.uid}:${image.run.gid})`]);
    if (image.run.workingDir) rows.push(['workdir', image.run.workingDir]);
    for (const e of image.run.env) rows.push(['env', e]);
    if (image.run.entrypoint) rows.push(['entrypoint', JSON.stringify(image.run.entrypoint)]);
    if (image.run.cmd) rows.push(['cmd', JSON.stringify(image.run.cmd)]);
  }
  if (image.layers.length > 0) rows.push(['layers', String(image.layers.length)]);
  rows.push(['path', image.path]);
  rows.push(['vms', vms.length > 0 ? vms.join(', ') : '-']);
  for (const [k, v] of rows) ctx.output.out(`${k.padEnd(11)}${v}`);
  return 0;
}
