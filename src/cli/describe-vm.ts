import type { VmInfo } from '../protocol/methods.ts';
import { AGENT_VERSION } from '../system/guest-contract.ts';
import { isOlderVersion } from '../protocol/versions.ts';

/** One VM as `key: value` lines, for vm show and vm create. */
export function describeVm(vm: VmInfo): string {
  return [
    `name:    ${vm.name}`,
    `id:      ${vm.id}`,
    `state:   ${vm.state}${vm.pid ? ` (pid ${vm.pid})` : ''}`,
    `spec:    ${vm.vcpus} vCPU, ${vm.memoryMib} MiB RAM, ${vm.diskGib} GiB disk`,
    `image:   ${vm.image}`,
    `kernel:  ${vm.kernel}`,
    `address: ${vm.ip} (tap ${vm.tap}, mac ${vm.mac})`,
    `nat:     ${vm.nat ? 'on (outbound through the host)' : 'off (host and other VMs only)'}`,
    `accel:   ${vm.accel ?? '-'}`,
    `agent:   ${vm.agentVersion ? `${vm.agentVersion}${isOlderVersion(vm.agentVersion, AGENT_VERSION) ? ` (older than this banger's ${AGENT_VERSION}; works, and vm restart brings the new one)` : ''}` : '-'}`,
    `workspace: ${vm.workspace ? `${vm.workspace.source} at ${vm.workspace.dir} (base ${vm.workspace.baseCommit.slice(0, 12)}${vm.workspace.branch ? `, branch ${vm.workspace.branch}` : ''})` : '-'}`,
    `created: ${vm.createdAt}`,
  ].join('\n');
}
