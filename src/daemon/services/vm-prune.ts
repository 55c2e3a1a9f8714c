// vm prune: which VMs go (every one not running, or those of them the user confirmed), and the report of how
// each went. The deleting itself is VmService's, under each VM's lock.
import { BangerError, messageWithCauses } from '../../protocol/errors.ts';
import type { VmInfo, VmPruneResult } from '../../protocol/methods.ts';

/** The VMs prune deletes: not running, and among `ids` when given. */
export function pruneCandidates(vms: readonly VmInfo[], ids: readonly string[] | undefined): VmInfo[] {
  const wanted = ids ? new Set(ids) : null;
  return vms.filter((vm) => vm.state !== 'running' && (wanted === null || wanted.has(vm.id)));
}

/**
 * Deletes every VM at once with `remove`, which answers false for a VM it left alone (started or deleted
 * meanwhile); a failure is reported for its VM and does not stop the others.
 */
export async function pruneEach(vms: readonly VmInfo[], remove: (vm: VmInfo) => Promise<boolean>): Promise<VmPruneResult> {
  const outcomes = await Promise.allSettled(vms.map((vm) => remove(vm)));
  const result: VmPruneResult = { deleted: [], failed: [] };
  outcomes.forEach((outcome, i) => {
    const { id, name } = vms[i]!;
    if (outcome.status === 'rejected') {
      const err = outcome.reason;
      const known = err instanceof BangerError ? err : null;
      result.failed.push({ id, name, error: { code: known?.code ?? 'INTERNAL', message: messageWithCauses(err), ...(known?.hint ? { hint: known.hint } : {}) } });
    } else if (outcome.value) result.deleted.push({ id, name });
  });
  return result;
}
