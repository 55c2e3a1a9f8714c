// A planned host checkout made into a real git repository for the guest: a shallow copy of the history (fetched
// into a scratch repository, never touching the user's), the planned files as they are on disk (uncommitted
// changes included), the index rebuilt and the staged changes re-staged, the guest-only branch made. It is built
// on the host (stageWorkspace) and then either becomes part of a new VM's work disk (the guest only takes
// ownership: GUEST_SEEDED_SCRIPT) or goes into a running guest as one tar stream over ssh (shipWorkspace).
import fs from 'node:fs';
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

/** tar reports progress every this many 10 KiB records (about 20 MiB). */
const CHECKPOINT_RECORDS = 2000;

/** Exit status of the guest script when the target directory is already there. */
const EXISTS_STATUS = 17;

/** Shell: marks the checkout $dest safe for git whoever owns it, once. */
// Images without git (most container images) have nothing to mark.
const MARK_SAFE = 'if command -v git >/dev/null 2>&1; then git config --global --get-all safe.directory | grep -qxF "$dest" || git config --global --add safe.directory "$dest"; fi';

/**
 * Runs in the guest as root on a checkout a new VM's work disk was made with ($1): the files are the daemon
 * user's on the host, so root takes them (symlinks themselves, never what they point to), and git is told the
 * checkout is safe.
 */
export const GUEST_SEEDED_SCRIPT = `set -eu
dest=$1
chown -hR 0:0 "$dest"
${MARK_SAFE}
`;

/**
 * Runs in the guest as root: unpacks a staged checkout into a scratch directory beside the target ($1) and only
 * then moves it into place, so a failure leaves no half checkout there.
 */
export const GUEST_UNPACK_SCRIPT = `set -eu
dest=$1
if [ -e "$dest" ]; then echo "banger: $dest already exists in the guest" >&2; exit ${EXISTS_STATUS}; fi
incoming="$dest.banger-incoming"
rm -rf "$incoming"
mkdir -p "$incoming"
trap 'rm -rf "$incoming"' EXIT
tar -x -f - -C "$incoming" --no-same-owner --warning=no-timestamp
mv "$incoming" "$dest"
trap - EXIT
${MARK_SAFE}
`;

/**
 * Runs on the host: the planned files ($2, NUL-separated, read verbatim so names starting with "-" stay names)
 * from the checkout ($1) into the staging directory ($3). Symlinks are copied as symlinks, never followed.
 */
const HOST_COPY_SCRIPT = `set -euo pipefail
tar -c -f - -C "$1" --null --verbatim-files-from --no-recursion -T "$2" --checkpoint=${CHECKPOINT_RECORDS} --checkpoint-action=echo='banger-progress %T' \
  | tar -x -f - -C "$3"
`;

export interface StageOptions {
  runner: ProcessRunner;
  plan: WorkspacePlan;
  /** Where the checkout is built; must not exist yet (its parent must). */
  dest: string;
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
}

/**
 * Builds the guest's checkout at `dest` on the host: the scratch repository (see scratchRepository), the planned
 * files copied in, the index rebuilt from HEAD with the staged changes applied to it, and the guest-only branch.
 * Git runs there with no global or system configuration, as it will in the guest, and with no hooks.
 */
export async function stageWorkspace(options: StageOptions): Promise<void> {
  const { runner, plan, dest, signal } = options;
  fs.mkdirSync(dest, { mode: 0o755 });
  const gitDir = path.join(dest, '.git');
  const git = (args: string[], extra: { stdoutFd?: number } = {}) => runChecked(runner, 'git', [...STAGING_GIT, ...args], { signal, env: STAGING_ENV, ...extra });
  await scratchRepository(runner, plan, gitDir, signal);
  options.progress({ stage: 'workspace', message: `copying ${plan.files.length} files and ${HISTORY_DEPTH} commits of history from ${plan.root}` });
  const list = path.join(gitDir, 'banger-files');
  fs.writeFileSync(list, plan.files.map((f) => `${f}\0`).join(''));
  const copied = await runner.run('bash', ['-c', HOST_COPY_SCRIPT, 'banger-copy', plan.root, list, dest], {
    signal,
    onLine: (line, stream) => {
      const bytes = stream === 'stderr' ? /banger-progress W: (\d+)/.exec(line)?.[1] : undefined;
      if (bytes) options.progress({ stage: 'workspace', message: `copied ${Math.round(Number(bytes) / 1024 ** 2)} MiB` });
    },
  });
  fs.rmSync(list);
  throwIfCancelled(signal);
  if (copied.code !== 0) {
    const detail = copied.stderr.split('\n').filter((l) => l.trim() !== '' && !l.includes('banger-progress')).slice(-6).join('\n');
    throw new BangerError('WORKSPACE_FAILED', `copying the files of ${plan.root} failed (exit ${copied.code ?? copied.signal}):\n${detail}`, {
      hint: `check that every file is readable (banger vm run --dry-run ${plan.root} lists them) and that ${path.dirname(dest)} has room (df -h)`,
    });
  }
  await git(['-C', dest, 'reset', '-q']);
  if (plan.staged) {
    const patch = path.join(gitDir, 'banger-staged.patch');
    const fd = fs.openSync(patch, 'w', 0o600);
    try {
      await runChecked(runner, 'git', [
        '-C', plan.root, 'diff', '--cached', '--binary', '--full-index', '--no-color', '--no-ext-diff', '--no-textconv', '--no-renames',
        '--src-prefix=a/', '--dst-prefix=b/', 'HEAD', '--',
      ], { signal, stdoutFd: fd });
    } finally {
      fs.closeSync(fd);
    }
    await git(['-C', dest, 'apply', '--cached', '--whitespace=nowarn', patch]);
    fs.rmSync(patch);
  }
  if (plan.branch) {
    const from = plan.base !== plan.head ? [plan.base] : [];
    await git(['-C', dest, 'checkout', '-q', ...(from.length > 0 ? ['-f'] : []), '-b', plan.branch, ...from]);
  }
}

/** Git in the staging directory: no hooks and no file-system monitor, whatever the user configured. */
const STAGING_GIT = ['-c', 'core.hooksPath=/dev/null', '-c', 'core.fsmonitor=false'];
/** ... and no global or system configuration: the guest has none either (the identity is in the repository). */
const STAGING_ENV = { ...process.env, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new BangerError('CANCELLED', 'preparing the workspace was cancelled', { hint: 'run it again when you want it' });
}

export interface ShipOptions {
  runner: ProcessRunner;
  plan: WorkspacePlan;
  target: SshTarget;
  /** Where the checkout goes in the guest. */
  dir: string;
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
  /** An empty private directory on the host where the checkout is built; the caller removes it. */
  scratch: string;
  /** How the guest command runs: over ssh to `target` unless given (tests run it on the host). */
  remote?: (command: string[]) => { command: string; args: string[] };
}

/** Ships the workspace into a running guest; resolves when the guest has it at `dir`. */
export async function shipWorkspace(options: ShipOptions): Promise<void> {
  const { runner, plan, signal } = options;
  const staged = path.join(options.scratch, 'repo');
  await stageWorkspace({ runner, plan, dest: staged, signal, progress: options.progress });
  options.progress({ stage: 'workspace', message: `shipping the checkout to ${options.target.name}:${options.dir}` });
  const unpack = ['sh', '-c', GUEST_UNPACK_SCRIPT, 'banger-unpack', options.dir];
  const ssh = options.remote?.(unpack) ?? guestBatchCommand(options.target, unpack);
  const result = await runner.run('bash', ['-c', 'set -o pipefail; tar -c -f - -C "$1" . | "${@:2}"', 'banger-ship', staged, ssh.command, ...ssh.args], { signal });
  throwIfCancelled(signal);
  if (result.code === EXISTS_STATUS) {
    throw new BangerError('VM_BAD_STATE', `${options.target.name} already has a workspace at ${options.dir}`, {
      hint: `use it (banger vm exec ${options.target.name} -- git status), or remove it first: banger vm exec ${options.target.name} -- rm -rf ${options.dir}`,
    });
  }
  if (result.code !== 0) {
    const detail = result.stderr.split('\n').filter((l) => l.trim() !== '').slice(-6).join('\n');
    throw new BangerError('WORKSPACE_FAILED', `shipping ${plan.root} into ${options.target.name} failed (exit ${result.code ?? result.signal}):\n${detail}`, {
      hint: `check that the guest's disk has room (banger vm exec ${options.target.name} -- df -h /root)`,
    });
  }
}

/**
 * A scratch repository holding the last HISTORY_DEPTH commits up to HEAD (and up to the branch's start), HEAD as
 * on the host (on its branch, or detached), and the identity git would use in this checkout. The user's
 * repository is only read.
 */
async function scratchRepository(runner: ProcessRunner, plan: WorkspacePlan, gitDir: string, signal: AbortSignal): Promise<void> {
  const g = (args: string[]) => runChecked(runner, 'git', [...STAGING_GIT, '--git-dir', gitDir, ...args], { signal, env: STAGING_ENV });
  await runChecked(runner, 'git', ['init', '-q', '--bare', '--template=', gitDir], { signal, env: STAGING_ENV });
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
}
