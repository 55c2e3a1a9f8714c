// Ships a planned host checkout into a running guest as a real git repository: a shallow copy of the history
// (fetched into a scratch repository, never touching the user's), the planned files as they are on disk
// (uncommitted changes included), and the staged changes re-staged in the guest. One tar stream over ssh.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { ProgressEvent } from '../../protocol/jsonrpc.ts';
import type { SshTarget } from '../../protocol/methods.ts';
import { guestBatchCommand } from '../../protocol/ssh-command.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { runChecked } from '../../system/process.ts';
import type { WorkspacePlan } from '../../system/workspace-plan.ts';

/** Commits of history the guest gets: enough for `git log` and `git diff` against recent work. */
export const HISTORY_DEPTH = 20;

/** Where the staged changes travel inside the shipped .git; the guest applies and removes it. */
const STAGED_PATCH = 'banger-staged.patch';

/** tar reports progress every this many 10 KiB records (about 20 MiB). */
const CHECKPOINT_RECORDS = 2000;

/** Exit status of the guest script when the target directory is already there. */
const EXISTS_STATUS = 17;

/**
 * Runs in the guest as root: unpacks into a scratch directory beside the target, rebuilds the index from HEAD,
 * re-stages the staged changes, creates the guest-only branch, and only then moves the checkout into place, so a
 * failure leaves no half checkout at the target. $1 target, $2 branch or "", $3 start commit of the branch or "".
 */
export const GUEST_UNPACK_SCRIPT = `set -eu
dest=$1 branch=$2 from=$3
if [ -e "$dest" ]; then echo "banger: $dest already exists in the guest" >&2; exit ${EXISTS_STATUS}; fi
incoming="$dest.banger-incoming"
rm -rf "$incoming"
mkdir -p "$incoming"
trap 'rm -rf "$incoming"' EXIT
tar -x -i -f - -C "$incoming" --no-same-owner --warning=no-timestamp
cd "$incoming"
git reset -q
if [ -s .git/${STAGED_PATCH} ]; then git apply --cached --whitespace=nowarn .git/${STAGED_PATCH}; fi
rm -f .git/${STAGED_PATCH}
if [ -n "$branch" ]; then
  if [ -n "$from" ]; then git checkout -q -f -b "$branch" "$from"; else git checkout -q -b "$branch"; fi
fi
cd /
mv "$incoming" "$dest"
trap - EXIT
git config --global --get-all safe.directory | grep -qxF "$dest" || git config --global --add safe.directory "$dest"
`;

/**
 * Runs on the host: the planned files ($2, NUL-separated, read verbatim so names starting with "-" stay names)
 * from the checkout ($1), then the scratch .git ($3), as two tar archives in one stream into the rest of the
 * arguments (the ssh command). Symlinks go as symlinks, never followed.
 */
const HOST_PACK_SCRIPT = `set -euo pipefail
{
  tar -c -f - -C "$1" --null --verbatim-files-from --no-recursion -T "$2" --checkpoint=${CHECKPOINT_RECORDS} --checkpoint-action=echo='banger-progress %T'
  tar -c -f - -C "$3" .git
} | "\${@:4}"
`;

export interface ShipOptions {
  runner: ProcessRunner;
  plan: WorkspacePlan;
  target: SshTarget;
  /** Where the checkout goes in the guest. */
  dir: string;
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
  /** Scratch space on the host (default: the OS temp directory). */
  tmpDir?: string;
  /** How the guest command runs: over ssh to `target` unless given (tests run it on the host). */
  remote?: (command: string[]) => { command: string; args: string[] };
}

/** Ships the workspace; resolves when the guest has it at `dir`. */
export async function shipWorkspace(options: ShipOptions): Promise<void> {
  const { runner, plan, signal } = options;
  const scratch = fs.mkdtempSync(path.join(options.tmpDir ?? os.tmpdir(), 'banger-workspace-'));
  try {
    const gitDir = path.join(scratch, 'repo', '.git');
    await scratchRepository(runner, plan, gitDir, signal);
    const list = path.join(scratch, 'files');
    fs.writeFileSync(list, plan.files.map((f) => `${f}\0`).join(''));
    options.progress({ stage: 'workspace', message: `shipping ${plan.files.length} files and ${HISTORY_DEPTH} commits of history from ${plan.root}` });
    const unpack = ['sh', '-c', GUEST_UNPACK_SCRIPT, 'banger-unpack', options.dir, plan.branch ?? '', plan.branch && plan.base !== plan.head ? plan.base : ''];
    const ssh = options.remote?.(unpack) ?? guestBatchCommand(options.target, unpack);
    const result = await runner.run('bash', ['-c', HOST_PACK_SCRIPT, 'banger-pack', plan.root, list, path.dirname(gitDir), ssh.command, ...ssh.args], {
      signal,
      onLine: (line, stream) => {
        const bytes = stream === 'stderr' ? /banger-progress W: (\d+)/.exec(line)?.[1] : undefined;
        if (bytes) options.progress({ stage: 'workspace', message: `shipped ${Math.round(Number(bytes) / 1024 ** 2)} MiB` });
      },
    });
    if (signal.aborted) throw new BangerError('CANCELLED', 'shipping the workspace was cancelled', { hint: 'run it again when you want it' });
    if (result.code === EXISTS_STATUS) {
      throw new BangerError('VM_BAD_STATE', `${options.target.name} already has a workspace at ${options.dir}`, {
        hint: `use it (banger vm exec ${options.target.name} -- git status), or remove it first: banger vm exec ${options.target.name} -- rm -rf ${options.dir}`,
      });
    }
    if (result.code !== 0) {
      const detail = result.stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('banger-progress')).slice(-6).join('\n');
      throw new BangerError('WORKSPACE_FAILED', `shipping ${plan.root} into ${options.target.name} failed (exit ${result.code ?? result.signal}):\n${detail}`, {
        hint: `check that the files are readable and the guest's disk has room (banger vm exec ${options.target.name} -- df -h /root)`,
      });
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * A scratch repository holding the last HISTORY_DEPTH commits up to HEAD (and up to the branch's start), HEAD as
 * on the host (on its branch, or detached), the identity git would use in this checkout, and the staged changes
 * as a binary patch. The user's repository is only read.
 */
async function scratchRepository(runner: ProcessRunner, plan: WorkspacePlan, gitDir: string, signal: AbortSignal): Promise<void> {
  const g = (args: string[], extra: { stdoutFd?: number } = {}) => runChecked(runner, 'git', ['--git-dir', gitDir, ...args], { signal, ...extra });
  fs.mkdirSync(path.dirname(gitDir), { recursive: true });
  await runChecked(runner, 'git', ['init', '-q', '--bare', '--template=', gitDir], { signal });
  const wants = [plan.head, ...(plan.base !== plan.head ? [plan.base] : [])];
  await g(['fetch', '-q', `--depth=${HISTORY_DEPTH}`, '--no-tags', '--no-write-fetch-head', `file://${plan.root}`, ...wants]);
  if (plan.headBranch) {
    await g(['update-ref', `refs/heads/${plan.headBranch}`, plan.head]);
    await g(['symbolic-ref', 'HEAD', `refs/heads/${plan.headBranch}`]);
  } else {
    await g(['update-ref', '--no-deref', 'HEAD', plan.head]);
  }
  await g(['config', 'core.bare', 'false']);
  if (plan.user.name) await g(['config', 'user.name', plan.user.name]);
  if (plan.user.email) await g(['config', 'user.email', plan.user.email]);
  if (plan.staged) {
    const fd = fs.openSync(path.join(gitDir, STAGED_PATCH), 'w', 0o600);
    try {
      await runChecked(runner, 'git', [
        '-C', plan.root, 'diff', '--cached', '--binary', '--full-index', '--no-color', '--no-ext-diff', '--no-textconv', '--no-renames',
        '--src-prefix=a/', '--dst-prefix=b/', 'HEAD', '--',
      ], { signal, stdoutFd: fd });
    } finally {
      fs.closeSync(fd);
    }
  }
}
