// How a VM is named on the command line: its name, its id, or a unique prefix of its id. The daemon resolves one
// ref against its store; the CLI resolves several against one listing. Both use these rules and these errors.
import { BangerError } from './errors.ts';

/** The VMs `ref` names among `vms`: an exact name or id wins; otherwise every VM whose id starts with it. */
export function matchVmRef<V extends { id: string; name: string }>(vms: readonly V[], ref: string): V[] {
  const exact = vms.filter((vm) => vm.name === ref || vm.id === ref);
  if (exact.length > 0) return exact;
  return ref === '' ? [] : vms.filter((vm) => vm.id.startsWith(ref));
}

/** The one VM `matches` holds, or the error for none (VM_NOT_FOUND) or several (INVALID_ARGUMENT). */
export function oneVm<V extends { name: string }>(ref: string, matches: readonly V[]): V {
  if (ref === '') throw new BangerError('INVALID_ARGUMENT', 'a VM name or id is required', { hint: 'see banger vm list --all' });
  if (matches.length === 0) throw new BangerError('VM_NOT_FOUND', `no VM named or with id ${JSON.stringify(ref)}`, { hint: 'see banger vm list --all' });
  if (matches.length > 1) {
    throw new BangerError('INVALID_ARGUMENT', `${JSON.stringify(ref)} matches ${matches.length} VMs (${matches.map((m) => m.name).join(', ')})`, { hint: 'use the full name or a longer id prefix' });
  }
  return matches[0]!;
}
