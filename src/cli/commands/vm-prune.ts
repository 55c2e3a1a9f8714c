// banger vm prune [-f]: deletes every VM that is not running, after asking (y/N) unless -f.
import { BangerError } from '../../protocol/errors.ts';
import type { VmPruneResult } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson, reportError } from '../output.ts';

export async function vmPrune(ctx: CliContext, flags: { force?: boolean; json?: boolean }): Promise<number> {
  const client = await ctx.client();
  let ids: string[] | undefined;
  if (!flags.force) {
    const candidates = (await client.listVms()).filter((vm) => vm.state !== 'running');
    if (candidates.length === 0) return report(ctx, { deleted: [], failed: [] }, flags);
    const names = candidates.map((vm) => vm.name).join(', ');
    const confirm = ctx.confirm ?? (await import('../confirm.ts')).terminalConfirm;
    const answer = await confirm(`Delete ${candidates.length} VM${candidates.length === 1 ? '' : 's'} that ${candidates.length === 1 ? 'is' : 'are'} not running (${names})?`);
    if (answer === null) {
      throw new BangerError('INVALID_ARGUMENT', `vm prune would delete ${names}, and there is no terminal to ask on`, {
        hint: 'to delete them without asking: banger vm prune -f',
      });
    }
    if (!answer) {
      ctx.output.err('banger: nothing deleted');
      return 0;
    }
    // Only what the user saw: a VM created since is not theirs to lose.
    ids = candidates.map((vm) => vm.id);
  }
  return report(ctx, await client.pruneVms(ids), flags);
}

function report(ctx: CliContext, result: VmPruneResult, flags: { json?: boolean }): number {
  let status = 0;
  if (!flags.json) {
    if (result.deleted.length === 0 && result.failed.length === 0) ctx.output.out('no VMs to prune (every VM is running, or there are none)');
    for (const vm of result.deleted) ctx.output.out(`${vm.name} deleted`);
  }
  for (const failure of result.failed) {
    const err = new BangerError(failure.error.code, failure.error.message, failure.error.hint ? { hint: failure.error.hint } : {});
    const code = reportError(ctx.output, err, { subject: failure.name, json: flags.json === true, ...(ctx.command ? { command: ctx.command } : {}) });
    if (status === 0) status = code;
  }
  if (flags.json) printJson(ctx.output, result);
  return status;
}
