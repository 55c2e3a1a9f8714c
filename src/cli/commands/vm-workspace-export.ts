// banger vm workspace export VM: everything that changed in the VM's workspace since its base commit, as one
// binary patch that `git apply` takes on a host checkout at that commit. To stdout, or to --output FILE.
import fs from 'node:fs';
import path from 'node:path';
import type { CliContext } from '../context.ts';

export async function vmWorkspaceExport(ctx: CliContext, ref: string, flags: { baseCommit?: string; output?: string }): Promise<number> {
  const client = await ctx.client();
  const result = await client.exportWorkspace({ ref, ...(flags.baseCommit !== undefined ? { baseCommit: flags.baseCommit } : {}) });
  const patch = Buffer.from(result.patchBase64, 'base64');
  if (flags.output !== undefined) {
    // Written beside the target and renamed, so a failure never leaves half a patch under the name asked for.
    const file = path.resolve(flags.output);
    const partial = `${file}.partial-${process.pid}`;
    try {
      fs.writeFileSync(partial, patch, { mode: 0o644 });
      fs.renameSync(partial, file);
    } finally {
      fs.rmSync(partial, { force: true });
    }
    ctx.output.err(`banger: wrote ${patch.length} bytes (changes since ${result.baseCommit.slice(0, 12)}) to ${file}; apply with: git apply ${file}`);
  } else if (patch.length > 0) {
    if (ctx.output.raw) ctx.output.raw(patch);
    else ctx.output.out(patch.toString('latin1'));
  }
  if (patch.length === 0) ctx.output.err(`banger: no changes since ${result.baseCommit.slice(0, 12)}`);
  return 0;
}
