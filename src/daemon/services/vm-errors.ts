// Errors of the VM lifecycle that say what was kept and how to finish the job.
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { VmInfo, VmState } from '../../protocol/methods.ts';

/** Why a VM could not be deleted because its tap is still there, and how to finish the job. */
/** Like tapKeptError, for a VM's NAT rules: while they may remain, its row keeps its address from another VM. */
export function natKeptError(vm: VmInfo, err: unknown): BangerError {
  const cause = err instanceof BangerError ? err : null;
  return new BangerError(cause?.code ?? 'NETWORK_FAILED', `NAT rules of VM ${vm.name} (${vm.ip}) could not be removed (${messageOf(err)}); the VM is kept, stopped, so its address is not handed to another VM`, {
    hint: `${cause?.hint ? `${cause.hint}; then ` : ''}rerun: banger vm delete ${vm.name}`,
    cause: err,
  });
}

export function tapKeptError(vm: VmInfo, err: unknown): BangerError {
  const cause = err instanceof BangerError ? err : null;
  const message = `tap ${vm.tap} of VM ${vm.name} could not be removed (${messageOf(err)}); the VM is kept, stopped, so the tap is not forgotten`;
  if (cause?.code === 'HELPER_UNAVAILABLE') {
    return new BangerError('HELPER_UNAVAILABLE', message, {
      hint: `start bangerd-root, then rerun: banger vm delete ${vm.name}${cause.hint ? `; ${cause.hint}` : ''}`,
      cause: err,
    });
  }
  return new BangerError(cause?.code ?? 'NETWORK_FAILED', message, {
    hint: `${cause?.hint ? `${cause.hint}; then ` : ''}rerun: banger vm delete ${vm.name}`,
    cause: err,
  });
}

/** A create that failed and whose undoing failed too: the first failure, and that the VM is still there. */
export function keptAfterFailedCreate(vm: VmInfo, err: unknown, cleanupErr: unknown): BangerError {
  const cleanup = cleanupErr instanceof BangerError ? cleanupErr : null;
  return new BangerError(err instanceof BangerError ? err.code : 'INTERNAL', `${messageOf(err)}\nundoing the create failed: ${messageOf(cleanupErr)}`, {
    hint: cleanup?.hint ?? `remove it: banger vm delete ${vm.name}`,
    cause: err,
  });
}

export function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new BangerError('CANCELLED', 'cancelled by the caller', { hint: 'run the command again when you want it' });
}

/** The refusal of an operation that needs a running VM; `what` names it ("vm ports"), else it is said plainly. */
export function notRunningError(vm: VmInfo, what?: string): BangerError {
  return new BangerError('VM_BAD_STATE', `VM ${vm.name} is ${vm.state}${what ? `: ${what} needs it running` : ', not running'}`, {
    hint: `start it: banger vm start ${vm.name}`,
  });
}

/**
 * The end of every switch over a VM's state: a state added to VmState (paused, for snapshots) fails to compile
 * until each operation says what it does in that state.
 */
export function unhandledState(state: never): never {
  throw new Error(`VM state ${String(state)} is not handled`);
}

/** A guest that booted but whose agent or sshd never answered: the VM is kept for post-mortem. */
export function isBootTimeout(err: unknown): boolean {
  return err instanceof BangerError && (err.code === 'SSH_TIMEOUT' || err.code === 'AGENT_UNAVAILABLE');
}

export type { VmState };
