// banger vm start VM...: boots stopped VMs one after another and waits for ssh in each.
import type { CliContext } from '../context.ts';
import { printJson, progressPrinter } from '../output.ts';
import { withCtrlC } from '../cancel.ts';
import { wholeNumber } from '../size-flags.ts';

export async function vmStart(ctx: CliContext, refs: string[], flags: { sshTimeout?: string; freshAccel?: boolean; json?: boolean }): Promise<number> {
  const timeout = wholeNumber(flags.sshTimeout, '--ssh-timeout');
  const client = await ctx.client();
  const results = [];
  for (const ref of refs) {
    const vm = await withCtrlC(
      ctx,
      () => ctx.output.err(`banger: cancelling; ${ref} is stopped again`),
      (signal) => client.startVm(ref, { waitSsh: true, ...(timeout === undefined ? {} : { sshTimeoutSec: timeout }), ...(flags.freshAccel ? { freshAccel: true } : {}) }, { signal, onProgress: progressPrinter(ctx.output) }),
    );
    results.push(vm);
    if (!flags.json) ctx.output.out(`${vm.name} running (${vm.ip})`);
  }
  if (flags.json) printJson(ctx.output, results);
  return 0;
}
