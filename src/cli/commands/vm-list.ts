// banger vm list: every VM as a table, or as JSON.
import type { CliContext } from '../context.ts';
import { printJson, table } from '../output.ts';

export async function vmList(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const vms = await (await ctx.client()).listVms();
  if (flags.json) printJson(ctx.output, vms);
  else if (vms.length === 0) ctx.output.out('no VMs (create one: banger vm run)');
  else ctx.output.out(table(['NAME', 'ID', 'STATE', 'IP', 'NAT', 'VCPU', 'MEM', 'DISK', 'IMAGE', 'CREATED'],
    vms.map((v) => [v.name, v.id, v.state, v.ip, v.nat ? 'on' : '-', v.vcpus, `${v.memoryMib}M`, `${v.diskGib}G`, v.image, v.createdAt.replace('T', ' ').slice(0, 19)])));
  return 0;
}
