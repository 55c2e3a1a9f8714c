// Workspaces: a host checkout shipped into a running VM (prepare), its tooling bootstrap, and the guest's changes
// since the base commit as one patch (export). Each runs under the VM's lock (VmService.withRunningVm).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { SshTarget, WorkspaceExportParams, WorkspaceExportResult, WorkspaceInfo, WorkspacePrepareParams, WorkspacePrepareResult } from '../../protocol/methods.ts';
import { guestBatchCommand } from '../../protocol/ssh-command.ts';
import type { Store } from '../../store/store.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { bootstrapNeedsNat, GUEST_WORKSPACE_DIR, planWorkspace } from '../../system/workspace-plan.ts';
import type { VmService } from './vm-service.ts';
import { shipWorkspace } from './workspace-ship.ts';

/** Where the bootstrap writes its log in the guest. */
export const BOOTSTRAP_LOG = '/root/.cache/banger/mise-install.log';

/** Largest patch export returns: base64 of it fits the daemon's reply limit with room to spare. */
const MAX_PATCH_BYTES = 40 * 1024 ** 2;

/** Exit status of the export script when the base commit is not in the guest's repository. */
const NO_BASE_STATUS = 19;

/**
 * Runs in the guest: everything that changed since $2 in the checkout at $1 (commits made there, staged and
 * unstaged edits, untracked files that are not ignored) as one binary patch on stdout. A scratch index keeps the
 * user's own index as it is.
 */
export const GUEST_EXPORT_SCRIPT = `set -eu
cd "$1"
base=$2
git cat-file -e "$base^{commit}" 2>/dev/null || { echo "banger: commit $base is not in the guest's repository" >&2; exit ${NO_BASE_STATUS}; }
idx=$(mktemp)
trap 'rm -f "$idx"' EXIT
current=$(git rev-parse --git-path index)
if [ -f "$current" ]; then cp "$current" "$idx"; else rm -f "$idx"; fi
GIT_INDEX_FILE=$idx git add -A
GIT_INDEX_FILE=$idx git diff --cached --binary --full-index -M --no-color --no-ext-diff --no-textconv --src-prefix=a/ --dst-prefix=b/ "$base" --
`;

/** Runs in the guest: `mise install` in the checkout $1, logging to $2. Trusts that checkout's config only. */
const GUEST_BOOTSTRAP_SCRIPT = `set -eu
mkdir -p "$(dirname "$2")"
cd "$1"
MISE_YES=1 MISE_TRUSTED_CONFIG_PATHS="$1" mise install >"$2" 2>&1
`;

export interface WorkspaceServiceDeps {
  vms: Pick<VmService, 'withRunningVm'>;
  store: Pick<Store, 'setWorkspace'>;
  runner: ProcessRunner;
  /** Host scratch space for shipping and for patches on their way out (default: the OS temp directory). */
  tmpDir?: string;
}

export class WorkspaceService {
  private readonly deps: WorkspaceServiceDeps;

  constructor(deps: WorkspaceServiceDeps) {
    this.deps = deps;
  }

  async prepare(params: WorkspacePrepareParams, ctx: CallContext): Promise<WorkspacePrepareResult> {
    const { runner } = this.deps;
    const mode = params.bootstrap ?? 'foreground';
    return this.deps.vms.withRunningVm(params.ref, 'preparing a workspace', async (vm, target) => {
      ctx.progress({ stage: 'workspace', message: `listing files in ${params.path}` });
      const plan = await planWorkspace(runner, params.path, {
        ...(params.includeUntracked ? { includeUntracked: true } : {}),
        ...(params.branch !== undefined ? { branch: params.branch } : {}),
        ...(params.from !== undefined ? { from: params.from } : {}),
        signal: ctx.signal,
      });
      if (plan.bootstrap && mode !== 'skip' && !vm.nat) throw bootstrapNeedsNat(plan.bootstrap, vm.name);
      await shipWorkspace({
        runner, plan, target, dir: GUEST_WORKSPACE_DIR, signal: ctx.signal, progress: (e) => ctx.progress(e), ...(this.deps.tmpDir ? { tmpDir: this.deps.tmpDir } : {}),
      });
      const workspace: WorkspaceInfo = { source: plan.root, dir: GUEST_WORKSPACE_DIR, baseCommit: plan.base, branch: plan.branch };
      this.deps.store.setWorkspace(vm.id, workspace);
      let bootstrap: WorkspacePrepareResult['bootstrap'] = null;
      if (plan.bootstrap && mode !== 'skip') {
        await this.bootstrap(target, plan.bootstrap, mode, ctx);
        bootstrap = { config: plan.bootstrap, mode, log: BOOTSTRAP_LOG };
      }
      return { vm: { id: vm.id, name: vm.name }, workspace, files: plan.files.length, untracked: plan.untracked, bootstrap };
    });
  }

  /** `mise install` in the guest: waited for (its failure is this call's), or started and left running. */
  private async bootstrap(target: SshTarget, config: string, mode: 'foreground' | 'background', ctx: CallContext): Promise<void> {
    const script = ['sh', '-c', GUEST_BOOTSTRAP_SCRIPT, 'banger-bootstrap', GUEST_WORKSPACE_DIR, BOOTSTRAP_LOG];
    const command = mode === 'foreground' ? script : ['setsid', '-f', ...script];
    ctx.progress({ stage: 'bootstrap', message: `${config}: mise install ${mode === 'foreground' ? '' : 'in the background '}(log: ${BOOTSTRAP_LOG})` });
    const { command: ssh, args } = guestBatchCommand(target, command);
    const r = await this.deps.runner.run(ssh, args, { signal: ctx.signal });
    if (ctx.signal.aborted) throw new BangerError('CANCELLED', 'the tooling bootstrap was cancelled', { hint: `run it by hand: banger vm exec ${target.name} -- mise install` });
    if (r.code !== 0) {
      const missing = /mise: (command )?not found/.test(r.stderr);
      throw new BangerError('WORKSPACE_FAILED', missing
        ? `${target.name}'s image has no mise, so ${config} cannot be bootstrapped`
        : `mise install failed in ${target.name} (exit ${r.code ?? r.signal})${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-4).join('\n')}` : ''}`, {
        hint: missing
          ? 'use an image with mise (the default debian-bookworm has it), or skip the bootstrap: --no-bootstrap'
          : `see its log: banger vm exec ${target.name} -- cat ${BOOTSTRAP_LOG}`,
      });
    }
  }

  async export(params: WorkspaceExportParams, ctx: CallContext): Promise<WorkspaceExportResult> {
    return this.deps.vms.withRunningVm(params.ref, 'exporting its workspace', async (vm, target) => {
      const base = params.baseCommit ?? vm.workspace?.baseCommit;
      if (!base) {
        throw new BangerError('INVALID_ARGUMENT', `VM ${vm.name} has no recorded workspace base commit`, {
          hint: `prepare one first (banger vm workspace prepare ${vm.name} PATH), or name the commit to diff against: --base-commit SHA`,
        });
      }
      const dir = vm.workspace?.dir ?? GUEST_WORKSPACE_DIR;
      const scratch = fs.mkdtempSync(path.join(this.deps.tmpDir ?? os.tmpdir(), 'banger-export-'));
      try {
        const file = path.join(scratch, 'patch');
        const fd = fs.openSync(file, 'w', 0o600);
        let r;
        try {
          const { command, args } = guestBatchCommand(target, ['sh', '-c', GUEST_EXPORT_SCRIPT, 'banger-export', dir, base]);
          r = await this.deps.runner.run(command, args, { signal: ctx.signal, stdoutFd: fd });
        } finally {
          fs.closeSync(fd);
        }
        if (ctx.signal.aborted) throw new BangerError('CANCELLED', 'the export was cancelled', { hint: 'run it again when you want it' });
        if (r.code === NO_BASE_STATUS) {
          throw new BangerError('INVALID_ARGUMENT', `commit ${base} is not in ${vm.name}'s repository at ${dir}`, {
            hint: `name a commit the guest has (banger vm exec ${vm.name} -- git log --oneline), or leave out --base-commit to use the recorded base`,
          });
        }
        if (r.code !== 0) {
          throw new BangerError('WORKSPACE_FAILED', `exporting ${dir} from ${vm.name} failed (exit ${r.code ?? r.signal})${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').slice(-4).join('\n')}` : ''}`, {
            hint: `see the checkout's state: banger vm exec ${vm.name} -- git status`,
          });
        }
        const size = fs.statSync(file).size;
        if (size > MAX_PATCH_BYTES) {
          throw new BangerError('WORKSPACE_FAILED', `the changes in ${vm.name} make a ${Math.round(size / 1024 ** 2)} MiB patch, more than banger hands over in one answer (${MAX_PATCH_BYTES / 1024 ** 2} MiB)`, {
            hint: `commit large generated files elsewhere or ignore them (.gitignore), or copy the diff yourself: banger vm exec ${vm.name} -- git diff --binary ${base}`,
          });
        }
        const patch = fs.readFileSync(file);
        return { baseCommit: base, patchBase64: patch.toString('base64'), bytes: patch.length };
      } finally {
        fs.rmSync(scratch, { recursive: true, force: true });
      }
    });
  }
}
