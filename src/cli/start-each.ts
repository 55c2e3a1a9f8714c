// What vm start and vm restart share: several VMs boot at once, each with its progress, and Ctrl-C cancels all.
import type { ProgressEvent } from '../protocol/jsonrpc.ts';
import type { VmInfo } from '../protocol/methods.ts';
import type { BangerClient, CallOptions } from '../sdk/client.ts';
import { withCtrlC } from './cancel.ts';
import type { CliContext } from './context.ts';
import { onEachVm } from './each-vm.ts';
import { progressPrinter } from './output.ts';
import { wholeNumber } from './size-flags.ts';

export interface StartFlags {
  sshTimeout?: string;
  freshAccel?: boolean;
  json?: boolean;
}

export type StartParams = { waitSsh: boolean; sshTimeoutSec?: number; freshAccel?: boolean };

/**
 * Runs `call` (client.startVm or client.restartVm) on every VM the refs name, at once. With several VMs each
 * progress line names its VM. A Ctrl-C cancels every boot under way (the daemon stops those VMs again).
 */
export async function startEach(
  ctx: CliContext,
  refs: string[],
  flags: StartFlags,
  call: (client: BangerClient, id: string, params: StartParams, options: CallOptions) => Promise<VmInfo>,
): Promise<number> {
  // Before connecting: a mistyped flag must not start the daemon.
  const timeout = wholeNumber(flags.sshTimeout, '--ssh-timeout');
  const params: StartParams = { waitSsh: true, ...(timeout === undefined ? {} : { sshTimeoutSec: timeout }), ...(flags.freshAccel ? { freshAccel: true } : {}) };
  const client = await ctx.client();
  const several = new Set(refs).size > 1;
  return withCtrlC(
    ctx,
    () => ctx.output.err(`banger: cancelling; ${several ? 'the VMs being started are' : 'the VM being started is'} stopped again`),
    (signal) => onEachVm(ctx, refs, {
      json: flags.json,
      op: (vm) => {
        const print = progressPrinter(ctx.output);
        // The spec line already starts with the VM's name.
        const onProgress = several ? (e: ProgressEvent) => print(e.stage === 'spec' ? e : { ...e, message: `${vm.name}: ${e.message}` }) : print;
        return call(client, vm.id, params, { signal, onProgress });
      },
      done: (vm) => `${vm.name} running (${vm.ip})`,
    }),
  );
}
