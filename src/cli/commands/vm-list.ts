// banger vm list (also vm ls, vm ps and ps): running VMs, or every VM with --all, as a table, ids or JSON.
import { BangerError } from '../../protocol/errors.ts';
import type { VmInfo } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson, table } from '../output.ts';

export interface ListFlags {
  all?: boolean;
  latest?: boolean;
  quiet?: boolean;
  json?: boolean;
}

/** What the flags select from every VM: the running ones, all (--all), or the most recently created (--latest, whatever its state). */
export function selectVms(vms: readonly VmInfo[], flags: ListFlags): VmInfo[] {
  if (flags.latest) {
    const latest = vms.reduce<VmInfo | null>((best, vm) => (best === null || vm.createdAt >= best.createdAt ? vm : best), null);
    return latest ? [latest] : [];
  }
  return flags.all ? [...vms] : vms.filter((vm) => vm.state === 'running');
}

export async function vmList(ctx: CliContext, flags: ListFlags): Promise<number> {
  if (flags.quiet && flags.json) {
    throw new BangerError('INVALID_ARGUMENT', '--quiet and --json do not go together', { hint: 'use --quiet for ids one per line, or --json for everything' });
  }
  const every = await (await ctx.client()).listVms();
  const vms = selectVms(every, flags);
  if (flags.json) printJson(ctx.output, vms);
  else if (flags.quiet) {
    if (vms.length > 0) ctx.output.out(vms.map((vm) => vm.id).join('\n'));
  } else if (vms.length === 0) ctx.output.out(emptyText(every));
  else ctx.output.out(table(['NAME', 'ID', 'STATE', 'IP', 'NAT', 'VCPU', 'MEM', 'DISK', 'IMAGE', 'CREATED'],
    vms.map((v) => [v.name, v.id, v.state, v.ip, v.nat ? 'on' : '-', v.vcpus, `${v.memoryMib}M`, `${v.diskGib}G`, v.image, v.createdAt.replace('T', ' ').slice(0, 19)])));
  return 0;
}

function emptyText(every: readonly VmInfo[]): string {
  if (every.length === 0) return 'no VMs (create one: banger vm run)';
  return `no running VMs (${every.length} not running; see them: banger vm list --all)`;
}
