// Workspaces: a new VM made with a host checkout in its work disk (create), a checkout shipped into a running VM
// (prepare), the tooling bootstrap, and the guest's changes since the base commit as one patch (export). Each
// runs under the VM's lock (VmService.create's extras, VmService.withRunningVm).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type {
  SshTarget, VmCreateParams, VmInfo, WorkspaceBootstrapParams, WorkspaceBootstrapResult, WorkspaceExportParams, WorkspaceExportResult, WorkspaceInfo,
  WorkspacePrepareParams, WorkspacePrepareResult, WorkspaceSource,
} from '../../protocol/methods.ts';
import { guestBatchCommand } from '../../protocol/ssh-command.ts';
import type { Store } from '../../store/store.ts';
import { lastLines, type ProcessRunner } from '../../system/process.ts';
import { WORK_DISK_MOUNT } from '../../system/guest-contract.ts';
import { bootstrapNeedsNat, GUEST_WORKSPACE_DIR, MISE_CONFIG_FILES, planWorkspace, type WorkspacePlan } from '../../system/workspace-plan.ts';
import type { VmService } from './vm-service.ts';
import type { AgentService } from './agent-service.ts';
import { GUEST_SEEDED_SCRIPT, shipWorkspace, stageWorkspace } from './workspace-ship.ts';
import { makeStagingDir, sweepStagingDirs, type StagingDir, type StagingDirs } from './workspace-staging.ts';

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

/**
 * Runs in the guest: `mise install` in the checkout $1 when it pins tools, logging to $2, waited for or ($3 =
 * background) left running in its own session. Prints the config file it found, nothing when there is none.
 * Trusts that checkout's config only.
 */
const GUEST_BOOTSTRAP_SCRIPT = `set -eu
cd "$1"
config=
for f in ${MISE_CONFIG_FILES.join(' ')}; do if [ -e "$f" ]; then config=$f; break; fi; done
[ -n "$config" ] || exit 0
echo "$config"
command -v mise >/dev/null 2>&1 || { echo "banger: mise: not found" >&2; exit 127; }
mkdir -p "$(dirname "$2")"
install='MISE_YES=1 MISE_TRUSTED_CONFIG_PATHS="$1" exec mise install >"$2" 2>&1'
if [ "$3" = background ]; then setsid -f sh -c "$install" banger-bootstrap "$1" "$2" </dev/null >/dev/null 2>&1; else sh -c "$install" banger-bootstrap "$1" "$2"; fi
`;

export interface WorkspaceServiceDeps {
  vms: Pick<VmService, 'withRunningVm' | 'create'>;
  store: Pick<Store, 'setWorkspace'>;
  runner: ProcessRunner;
  /** Runs banger's guest scripts through the agent in VMs whose image has no sshd. */
  agents?: Pick<AgentService, 'exec'>;
  /** Whether a VM's image has sshd (the default image does). */
  hasSshd?(vm: VmInfo): boolean;
  /** Host scratch space for patches on their way out, and for checkouts too big for memory (default: the OS temp directory). */
  tmpDir?: string;
  /** Where checkouts are built (default: /dev/shm when it is there, else tmpDir). */
  staging?: StagingDirs;
  log?(message: string): void;
}

export class WorkspaceService {
  private readonly deps: WorkspaceServiceDeps;

  private readonly staging: StagingDirs;

  constructor(deps: WorkspaceServiceDeps) {
    this.deps = deps;
    const disk = deps.tmpDir ?? os.tmpdir();
    this.staging = deps.staging ?? { memory: fs.existsSync('/dev/shm') ? '/dev/shm' : null, disk };
    // A daemon that died while building a checkout left it behind; in memory, it would hold RAM until reboot.
    for (const dir of sweepStagingDirs(this.staging)) deps.log?.(`removed ${dir}, left by a daemon that is gone`);
  }

  /**
   * A new VM whose work disk is made with the checkout at GUEST_WORKSPACE_DIR: planned first (every refusal before
   * anything exists), built on the host, written by mkfs with the disk, and handed to root once sshd answers.
   */
  async create(params: VmCreateParams & { workspace: WorkspaceSource }, ctx: CallContext): Promise<VmInfo> {
    const { workspace: source, ...rest } = params;
    if (rest.start === false || rest.waitSsh === false) {
      throw new BangerError('INVALID_ARGUMENT', 'a VM made with a workspace is started and waited for: leave start and waitSsh on', {
        hint: 'or create it bare and ship the checkout once it runs: banger vm workspace prepare VM PATH',
      });
    }
    const plan = await this.plan(source, ctx);
    const rel = path.posix.relative(WORK_DISK_MOUNT, GUEST_WORKSPACE_DIR);
    return this.deps.vms.create(rest, ctx, {
      seedWorkDisk: (c) => this.stage(plan, c, (staging) => stageWorkspace({
        runner: this.deps.runner, plan, dest: path.join(staging.dir, rel), signal: c.signal, progress: (e) => c.progress(e),
      })),
      afterFirstBoot: async (vm, target, c) => {
        const argv = ['sh', '-c', GUEST_SEEDED_SCRIPT, 'banger-seeded', GUEST_WORKSPACE_DIR];
        let r: { code: number | null; signal?: string | null; stderr: string };
        // An image without sshd is reached through its agent, which runs the script as root too.
        if (this.deps.agents && this.deps.hasSshd && !this.deps.hasSshd(vm)) r = await this.deps.agents.exec(vm, argv, { signal: c.signal });
        else {
          const { command, args } = guestBatchCommand(target, argv);
          r = await this.deps.runner.run(command, args, { signal: c.signal });
        }
        if (c.signal.aborted) throw new BangerError('CANCELLED', 'creating the VM was cancelled', { hint: 'run it again when you want it' });
        if (r.code !== 0) {
          throw new BangerError('WORKSPACE_FAILED', `handing ${GUEST_WORKSPACE_DIR} to root in ${vm.name} failed (exit ${r.code ?? r.signal ?? 'unknown'})${tail(r.stderr)}`, {
            hint: `see the guest's console: banger vm logs ${vm.name}`,
          });
        }
        this.deps.store.setWorkspace(vm.id, workspaceOf(plan));
        c.progress({ stage: 'workspace', message: `${plan.root} is at ${GUEST_WORKSPACE_DIR} (${plan.files.length} files, base ${plan.base.slice(0, 12)})` });
      },
    });
  }

  async prepare(params: WorkspacePrepareParams, ctx: CallContext): Promise<WorkspacePrepareResult> {
    const { runner } = this.deps;
    const mode = params.bootstrap ?? 'foreground';
    return this.deps.vms.withRunningVm(params.ref, 'preparing a workspace', async (vm, target) => {
      const plan = await this.plan(params, ctx);
      if (plan.bootstrap && mode !== 'skip' && !vm.nat) throw bootstrapNeedsNat(plan.bootstrap, vm.name);
      const staging = await this.stage(plan, ctx, (s) => shipWorkspace({
        runner, plan, target, dir: GUEST_WORKSPACE_DIR, signal: ctx.signal, progress: (e) => ctx.progress(e), scratch: s.dir,
      }));
      staging.remove();
      const workspace = workspaceOf(plan);
      this.deps.store.setWorkspace(vm.id, workspace);
      const ran = plan.bootstrap && mode !== 'skip' ? await this.runBootstrap(target, mode, ctx) : null;
      const bootstrap = ran?.config ? { ...ran, config: ran.config } : null;
      return { vm: { id: vm.id, name: vm.name }, workspace, files: plan.files.length, untracked: plan.untracked, bootstrap };
    });
  }

  /** `mise install` in the workspace of a running VM with NAT; nothing runs when the workspace pins no tools. */
  async bootstrap(params: WorkspaceBootstrapParams, ctx: CallContext): Promise<WorkspaceBootstrapResult> {
    return this.deps.vms.withRunningVm(params.ref, 'bootstrapping its workspace', async (vm, target) => {
      if (!vm.workspace) {
        throw new BangerError('INVALID_ARGUMENT', `VM ${vm.name} has no workspace to bootstrap`, { hint: `ship one first: banger vm workspace prepare ${vm.name} PATH` });
      }
      if (!vm.nat) {
        throw new BangerError('INVALID_ARGUMENT', `VM ${vm.name} has no NAT, and mise install needs outbound network`, {
          hint: 'create the VM with --nat (banger vm run --nat PATH), or go without the bootstrap (--no-bootstrap)',
        });
      }
      return this.runBootstrap(target, params.mode, ctx);
    });
  }

  /** A fresh staging directory with `build` run in it: the caller removes it, unless `build` fails. */
  private async stage(plan: WorkspacePlan, ctx: CallContext, build: (staging: StagingDir) => Promise<void>): Promise<StagingDir> {
    const staging = makeStagingDir(plan, this.staging);
    ctx.progress({ stage: 'workspace', message: `building the checkout ${staging.inMemory ? 'in memory' : 'on disk'} (${staging.dir})` });
    try {
      await build(staging);
      return staging;
    } catch (err) {
      staging.remove();
      throw err;
    }
  }

  private plan(source: WorkspaceSource, ctx: CallContext): Promise<WorkspacePlan> {
    ctx.progress({ stage: 'workspace', message: `listing files in ${source.path}` });
    return planWorkspace(this.deps.runner, source.path, {
      ...(source.includeUntracked ? { includeUntracked: true } : {}),
      ...(source.branch !== undefined ? { branch: source.branch } : {}),
      ...(source.from !== undefined ? { from: source.from } : {}),
      signal: ctx.signal,
    });
  }

  /** `mise install` in the guest: waited for (its failure is this call's), or started and left running. */
  private async runBootstrap(target: SshTarget, mode: 'foreground' | 'background', ctx: CallContext): Promise<WorkspaceBootstrapResult> {
    ctx.progress({ stage: 'bootstrap', message: `mise install ${mode === 'foreground' ? '' : 'in the background '}(log: ${BOOTSTRAP_LOG})` });
    const { command: ssh, args } = guestBatchCommand(target, ['sh', '-c', GUEST_BOOTSTRAP_SCRIPT, 'banger-bootstrap', GUEST_WORKSPACE_DIR, BOOTSTRAP_LOG, mode]);
    const r = await this.deps.runner.run(ssh, args, { signal: ctx.signal });
    if (ctx.signal.aborted) throw new BangerError('CANCELLED', 'the tooling bootstrap was cancelled', { hint: `run it by hand: banger vm exec ${target.name} -- mise install` });
    const config = r.stdout.trim().split('\n')[0] || null;
    if (r.code !== 0) {
      const missing = /mise: (command )?not found/.test(r.stderr);
      throw new BangerError('WORKSPACE_FAILED', missing
        ? `${target.name}'s image has no mise, so ${config ?? 'the tool config'} cannot be bootstrapped`
        : `mise install failed in ${target.name} (exit ${r.code ?? r.signal})${tail(r.stderr)}`, {
        hint: missing
          ? 'use an image with mise (the default debian-bookworm has it), or skip the bootstrap: --no-bootstrap'
          : `see its log: banger vm exec ${target.name} -- cat ${BOOTSTRAP_LOG}`,
      });
    }
    return { config, mode, log: BOOTSTRAP_LOG };
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
          throw new BangerError('WORKSPACE_FAILED', `exporting ${dir} from ${vm.name} failed (exit ${r.code ?? r.signal})${tail(r.stderr)}`, {
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

function workspaceOf(plan: WorkspacePlan): WorkspaceInfo {
  return { source: plan.root, dir: GUEST_WORKSPACE_DIR, baseCommit: plan.base, branch: plan.branch };
}

/** The last lines of a guest command's stderr, for a message (empty when it said nothing). */
function tail(stderr: string): string {
  const text = lastLines(stderr, 4);
  return text ? `: ${text}` : '';
}
