import type { VmInfo } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson, table } from '../output.ts';

export function describeVm(vm: VmInfo): string {
  return [
    `name:    ${vm.name}`,
    `id:      ${vm.id}`,
    `state:   ${vm.state}${vm.pid ? ` (pid ${vm.pid})` : ''}`,
    `spec:    ${vm.vcpus} vCPU, ${vm.memoryMib} MiB RAM, ${vm.diskGib} GiB disk`,
    `image:   ${vm.image}`,
    `kernel:  ${vm.kernel}`,
    `address: ${vm.ip} (tap ${vm.tap}, mac ${vm.mac})`,
    `accel:   ${vm.accel ?? '-'}`,
    `created: ${vm.createdAt}`,
  ].join('\n');
}

export async function vmList(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const vms = await (await ctx.client()).listVms();
  if (flags.json) printJson(ctx.output, vms);
  else if (vms.length === 0) ctx.output.out('no VMs (create one: banger vm run)');
  else ctx.output.out(table(['NAME', 'ID', 'STATE', 'IP', 'VCPU', 'MEM', 'DISK', 'IMAGE', 'CREATED'],
    vms.map((v) => [v.name, v.id, v.state, v.ip, v.vcpus, `${v.memoryMib}M`, `${v.diskGib}G`, v.image, v.createdAt.replace('T', ' ').slice(0, 19)])));
  return 0;
}

export async function vmShow(ctx: CliContext, ref: string, flags: { json?: boolean }): Promise<number> {
  const vm = await (await ctx.client()).showVm(ref);
  if (flags.json) printJson(ctx.output, vm);
  else ctx.output.out(describeVm(vm));
  return 0;
}
