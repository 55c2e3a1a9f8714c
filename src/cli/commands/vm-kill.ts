// banger vm kill VM... [--signal SIG]: ends VMMs with a signal (SIGKILL by default), without syncing the guest.
import { DEFAULT_KILL_SIGNAL, parseKillSignal } from '../../protocol/kill-signals.ts';
import type { CliContext } from '../context.ts';
import { onEachVm } from '../each-vm.ts';

export async function vmKill(ctx: CliContext, refs: string[], flags: { signal?: string; json?: boolean }): Promise<number> {
  // Before connecting: a mistyped signal must not start the daemon.
  const signal = flags.signal === undefined ? DEFAULT_KILL_SIGNAL : parseKillSignal(flags.signal);
  const client = await ctx.client();
  return onEachVm(ctx, refs, { json: flags.json, op: (vm) => client.killVm(vm.id, signal), done: (vm) => `${vm.name} killed (${signal}), stopped` });
}
