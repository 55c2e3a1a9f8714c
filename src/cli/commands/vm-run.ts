// banger vm run [--rm] [-- CMD ARGS...]: a fresh VM, a shell or a command in it, and its exit status back.
import { BangerError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { progressPrinter } from '../output.ts';
import { withCtrlC } from '../cancel.ts';
import { runSsh } from '../ssh-session.ts';
import type { CreateFlags } from './vm-create.ts';
import { createParams } from './vm-create.ts';

export interface RunFlags extends CreateFlags {
  rm?: boolean;
}

export async function vmRun(ctx: CliContext, paths: string[], flags: RunFlags): Promise<number> {
  if (paths.length > 0) {
    throw new BangerError('INVALID_ARGUMENT', `shipping a directory into the VM (${paths[0]}) is not supported yet`, {
      hint: 'run without a path: banger vm run [--rm] -- CMD',
    });
  }
  const client = await ctx.client();
  const vm = await withCtrlC(
    () => ctx.output.err('banger: cancelling; the VM being created is removed'),
    (signal) => client.createVm(createParams(flags), { signal, onProgress: progressPrinter(ctx.output) }),
  );
  let status: number;
  try {
    status = await runSsh(await client.sshTarget(vm.id), ctx.guestCommand);
  } finally {
    if (flags.rm) {
      // Ctrl-C here must not leave the VM half-deleted.
      const ignore = (): void => undefined;
      process.on('SIGINT', ignore);
      try {
        await client.deleteVm(vm.id);
      } finally {
        process.removeListener('SIGINT', ignore);
      }
    }
  }
  if (!flags.rm && status !== 255) ctx.output.err(`banger: VM ${vm.name} is still running (banger vm ssh ${vm.name}; banger vm delete ${vm.name})`);
  return status;
}
