// banger vm run [--rm] [-- CMD ARGS...]: a fresh VM, a shell or a command in it, and its exit status back.
import { BangerError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { progressPrinter } from '../output.ts';
import { runSsh } from '../ssh-session.ts';
import { holdSignals, sessionStatus, signalExitStatus, SSH_FAILED, withCtrlC } from '../cancel.ts';
import { createParams, type CreateFlags } from '../create-flags.ts';

export interface RunFlags extends CreateFlags {
  rm?: boolean;
}

export async function vmRun(ctx: CliContext, paths: string[], flags: RunFlags): Promise<number> {
  if (paths.length > 0) {
    throw new BangerError('INVALID_ARGUMENT', `shipping a directory into the VM (${paths[0]}) is not supported yet`, {
      hint: 'run without a path: banger vm run [--rm] -- CMD',
    });
  }
  // Before connecting: a mistyped flag must not start the daemon.
  const params = createParams(flags);
  const client = await ctx.client();
  const vm = await withCtrlC(
    ctx,
    () => ctx.output.err('banger: cancelling; the VM being created is removed'),
    (signal) => client.createVm(params, { signal, onProgress: progressPrinter(ctx.output) }),
  );
  // Installed before any other event can run, and held until the VM is deleted: no signal may end the CLI in
  // between, or --rm would leave the VM behind. SIGTERM and SIGHUP end the session instead; Ctrl-C goes to ssh.
  const held = holdSignals(ctx.signals ?? process);
  try {
    let status: number;
    try {
      const target = await client.sshTarget(vm.id);
      // A signal that arrives before the session starts cancels it; Ctrl-C then means 130 as it does elsewhere.
      const early = held.received ?? (held.interrupted ? 'SIGINT' : null);
      status = early ? signalExitStatus(early) : sessionStatus(held, await (ctx.runSsh ?? runSsh)(target, ctx.guestCommand, { signal: held.signal }));
    } finally {
      if (flags.rm) await client.deleteVm(vm.id);
    }
    if (!flags.rm && status !== SSH_FAILED) ctx.output.err(`banger: VM ${vm.name} is still running (banger vm ssh ${vm.name}; banger vm delete ${vm.name})`);
    return held.received ? signalExitStatus(held.received) : status;
  } finally {
    held.release();
  }
}
