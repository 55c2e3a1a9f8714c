// Which VMs and VMM processes are banger's, as bangerd-root can tell without a store: a VM is known when bangerd
// has made its directory in the state directory, and a process is that VM's QEMU when it runs a qemu-system-*
// executable as the owner with the VM's -name (system/qemu-process.ts, shared with bangerd's QEMU driver). The
// pid QEMU writes sits in a file the owner can rewrite, so the pid the helper hands back (and bangerd later
// signals) is checked against the process table first.
import path from 'node:path';
import type { Owner } from '../system/as-owner.ts';
import { qemuProcessProblem } from '../system/qemu-process.ts';
import { lstatOrNull } from './helper-checks.ts';
import { refuse } from './refusal.ts';

/** Refuses a VM id (already matched against VM_ID_PATTERN) that has no directory of the owner's in `stateDir/vms`. */
export function refuseUnknownVm(stateDir: string, owner: Owner, vmId: string): void {
  const st = lstatOrNull(path.join(stateDir, 'vms', vmId));
  if (st === null || !st.isDirectory() || st.uid !== owner.uid) refuse(`vm id ${vmId} is not a VM of this owner's (no directory ${path.join(stateDir, 'vms', vmId)})`);
}

/** Why process `pid` is not VM `vmId`'s QEMU running as the owner (system/qemu-process.ts); null when it is. */
export function notBangerQemu(o: { procDir: string; owner: Owner; vmId: string; pid: number }): string | null {
  return qemuProcessProblem({ procDir: o.procDir, vmId: o.vmId, pid: o.pid, uid: o.owner.uid });
}

/** `pid` when it is VM `vmId`'s QEMU (see notBangerQemu); HELPER_REFUSED otherwise. */
export function checkedQemuPid(o: { procDir: string; owner: Owner; vmId: string; pid: number }): number {
  const problem = notBangerQemu(o);
  if (problem !== null) refuse(`the pid file of VM ${o.vmId} names process ${o.pid}, which is not banger's: ${problem}`);
  return o.pid;
}
