// banger vm workspace prepare VM PATH: ships a host checkout into a running VM at /root/repo and records its
// base commit, for `vm workspace export` later.
import path from 'node:path';
import type { CliContext } from '../context.ts';
import { printJson, progressPrinter } from '../output.ts';
import { withCtrlC } from '../cancel.ts';
import { workspaceParams, type WorkspaceFlags } from '../workspace-flags.ts';

export async function vmWorkspacePrepare(ctx: CliContext, ref: string, dir: string, flags: WorkspaceFlags & { json?: boolean }): Promise<number> {
  const client = await ctx.client();
  const result = await withCtrlC(
    ctx,
    () => ctx.output.err('banger: cancelling; nothing is left at /root/repo'),
    (signal) => client.prepareWorkspace({ ref, ...workspaceParams(path.resolve(dir), flags), bootstrap: flags.bootstrap === false ? 'skip' : 'foreground' }, { signal, onProgress: progressPrinter(ctx.output) }),
  );
  if (flags.json) printJson(ctx.output, result);
  else {
    const { workspace } = result;
    ctx.output.out(`${result.vm.name}: ${workspace.source} at ${workspace.dir} (${result.files} files, base ${workspace.baseCommit.slice(0, 12)}${workspace.branch ? `, branch ${workspace.branch}` : ''})`);
  }
  return 0;
}
