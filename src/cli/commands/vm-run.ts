// banger vm run [PATH] [--rm] [-d] [-- CMD ARGS...]: a fresh VM, optionally with a host checkout shipped to
// /root/repo, then a shell or a command in it and its exit status back (or, with -d, a VM left ready).
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { VmInfo } from '../../protocol/methods.ts';
import { NodeProcessRunner } from '../../system/process.ts';
import { bootstrapNeedsNat, GUEST_WORKSPACE_DIR, planWorkspace, printablePath, type WorkspacePlan } from '../../system/workspace-plan.ts';
import type { BangerClient } from '../../sdk/client.ts';
import type { CliContext } from '../context.ts';
import { printJson, progressPrinter } from '../output.ts';
import { runSsh } from '../ssh-session.ts';
import { runViaAgent } from '../agent-session.ts';
import { holdSignals, sessionStatus, signalExitStatus, SSH_FAILED, withCtrlC } from '../cancel.ts';
import { createParams, type CreateFlags } from '../create-flags.ts';
import { workspaceParams, type WorkspaceFlags } from '../workspace-flags.ts';
import { parseForwardSpec, type ForwardSpec } from './vm-forward.ts';

export interface RunFlags extends CreateFlags, WorkspaceFlags {
  rm?: boolean;
  detach?: boolean;
  dryRun?: boolean;
  nat?: boolean;
  /** -p/--publish [HOST_PORT:]GUEST_PORT, repeatable. */
  publish?: string[];
}

/** Refusals that need nothing but the command line: before any file is read or anything is created. */
function checkFlags(ctx: CliContext, paths: string[], flags: RunFlags): void {
  if (paths.length > 1) throw new BangerError('INVALID_ARGUMENT', `vm run takes one path, got ${paths.length}`, { hint: 'put the command after --: banger vm run PATH -- CMD ARGS' });
  if (flags.detach && flags.rm) throw new BangerError('INVALID_ARGUMENT', '-d/--detach and --rm contradict each other: a detached VM is kept', { hint: 'leave out --rm, and delete it later: banger vm delete NAME' });
  if (flags.detach && ctx.guestCommand !== null) {
    throw new BangerError('INVALID_ARGUMENT', '-d/--detach returns at once, so it takes no command', { hint: 'run the command afterwards: banger vm exec NAME -- CMD' });
  }
  if (paths.length === 0) {
    const needsPath = [flags.includeUntracked && '--include-untracked', flags.branch !== undefined && '--branch', flags.from !== undefined && '--from', flags.dryRun && '--dry-run'].filter(Boolean);
    if (needsPath.length > 0) throw new BangerError('INVALID_ARGUMENT', `${needsPath.join(', ')} need a PATH to ship`, { hint: 'give the checkout: banger vm run ./repo ...' });
  }
}

function printPlan(ctx: CliContext, plan: WorkspacePlan, json: boolean): void {
  if (json) {
    printJson(ctx.output, { root: plan.root, base: plan.base, branch: plan.branch, files: plan.files, untracked: plan.untracked, staged: plan.staged, bootstrap: plan.bootstrap });
    return;
  }
  for (const file of plan.files) ctx.output.out(printablePath(file));
  const parts = [`${plan.files.length} files`, plan.untracked > 0 ? `${plan.untracked} untracked` : null, `base ${plan.base.slice(0, 12)}`, plan.staged ? 'staged changes carried over' : null, plan.bootstrap ? `bootstrap: mise install (${plan.bootstrap})` : null];
  ctx.output.err(`banger: would ship ${plan.root} to ${GUEST_WORKSPACE_DIR}: ${parts.filter(Boolean).join(', ')}; nothing was created`);
}

export async function vmRun(ctx: CliContext, paths: string[], flags: RunFlags): Promise<number> {
  checkFlags(ctx, paths, flags);
  // Before connecting: a mistyped flag or a repository banger cannot ship must not start the daemon or a VM.
  const params = createParams(flags);
  const forwards = (flags.publish ?? []).map(parseForwardSpec);
  const plan = paths[0] === undefined ? null : await planWorkspace(new NodeProcessRunner(), paths[0], {
    ...(flags.includeUntracked ? { includeUntracked: true } : {}),
    ...(flags.branch !== undefined ? { branch: flags.branch } : {}),
    ...(flags.from !== undefined ? { from: flags.from } : {}),
  });
  if (plan && flags.dryRun) {
    printPlan(ctx, plan, flags.json === true);
    return 0;
  }
  const bootstrap = plan?.bootstrap && flags.bootstrap !== false ? plan.bootstrap : null;
  if (bootstrap && !flags.nat) throw bootstrapNeedsNat(bootstrap, flags.name ?? null);

  const client = await ctx.client();
  // The checkout goes into the new VM's work disk as it is made: the VM exists only with its workspace.
  const workspace = plan ? { workspace: workspaceParams(path.resolve(paths[0]!), flags) } : {};
  const vm = await withCtrlC(
    ctx,
    () => ctx.output.err('banger: cancelling; the VM being created is removed'),
    (signal) => client.createVm({ ...params, ...workspace }, { signal, onProgress: progressPrinter(ctx.output) }),
  );
  if (bootstrap) await runBootstrap(ctx, client, vm, flags);
  if (forwards.length > 0) await publishPorts(ctx, client, vm, forwards, flags);
  if (flags.detach) {
    const where = plan ? ` with ${plan.root} at ${GUEST_WORKSPACE_DIR}` : '';
    ctx.output.out(`${vm.name} is ready${where}: banger vm ssh ${vm.name}; banger vm exec ${vm.name} -- CMD; banger vm delete ${vm.name}`);
    return 0;
  }
  // Installed before any other event can run, and held until the VM is deleted: no signal may end the CLI in
  // between, or --rm would leave the VM behind. SIGTERM and SIGHUP end the session instead; Ctrl-C goes to ssh.
  const held = holdSignals(ctx.signals ?? process);
  try {
    let status: number;
    try {
      // An image without sshd is reached through the guest agent: a command, with the image's Env, WorkingDir
      // and User, but no terminal yet.
      const { image } = await client.showImage(vm.image);
      if (!image.hasSshd && ctx.guestCommand === null) {
        throw new BangerError('INVALID_ARGUMENT', `image ${image.name} has no sshd, so banger cannot open a shell in it`, {
          hint: `give a command: banger vm run --image ${image.name} -- sh -c '...'${flags.rm ? '' : `; or run one in this VM: banger vm exec ${vm.name} -- CMD`}`,
        });
      }
      const target = image.hasSshd ? await client.sshTarget(vm.id) : null;
      // A signal that arrives before the session starts cancels it; Ctrl-C then means 130 as it does elsewhere.
      const early = held.received ?? (held.interrupted ? 'SIGINT' : null);
      if (early) status = signalExitStatus(early);
      else if (target === null) {
        status = await (ctx.runViaAgent ?? runViaAgent)(vm.id, ctx.guestCommand!, { ...(ctx.signals ? { signals: ctx.signals } : {}), ...(plan ? { cwd: GUEST_WORKSPACE_DIR } : {}) });
      } else {
        status = sessionStatus(held, await (ctx.runSsh ?? runSsh)(target, ctx.guestCommand, { signal: held.signal, ...(plan ? { cwd: GUEST_WORKSPACE_DIR } : {}) }));
      }
    } finally {
      if (flags.rm) await client.deleteVm(vm.id);
    }
    if (!flags.rm && status !== SSH_FAILED) ctx.output.err(`banger: VM ${vm.name} is still running (banger vm ssh ${vm.name}; banger vm delete ${vm.name})`);
    return held.received ? signalExitStatus(held.received) : status;
  } finally {
    held.release();
  }
}

/** The -p forwards, once the VM runs; a failed one removes the VM under --rm and keeps it otherwise. */
async function publishPorts(ctx: CliContext, client: BangerClient, vm: VmInfo, forwards: ForwardSpec[], flags: RunFlags): Promise<void> {
  try {
    for (const f of forwards) {
      const made = await client.forwardPort(vm.id, f.guestPort, f.hostPort);
      ctx.output.err(`banger: 127.0.0.1:${made.hostPort} -> ${vm.name}.vm:${made.guestPort}`);
    }
  } catch (err) {
    if (flags.rm) await client.deleteVm(vm.id);
    else ctx.output.err(`banger: VM ${vm.name} is kept; forward again with banger vm forward ${vm.name} [HOST_PORT:]GUEST_PORT, or remove it: banger vm delete ${vm.name}`);
    throw err;
  }
}

/**
 * `mise install` in the new VM's workspace. Interactive sessions start while it runs; a command or a detached VM
 * gets its tools first. Cancelled, or failed under --rm, the VM is deleted; failed otherwise, it is kept and the
 * user is told how to retry or remove it.
 */
async function runBootstrap(ctx: CliContext, client: BangerClient, vm: VmInfo, flags: RunFlags): Promise<void> {
  const mode = ctx.guestCommand === null && !flags.detach ? 'background' : 'foreground';
  let cancelled = false;
  try {
    await withCtrlC(
      ctx,
      () => {
        cancelled = true;
        ctx.output.err('banger: cancelling; the VM is removed');
      },
      (signal) => client.bootstrapWorkspace({ ref: vm.id, mode }, { signal, onProgress: progressPrinter(ctx.output) }),
    );
  } catch (err) {
    if (cancelled || flags.rm) await client.deleteVm(vm.id);
    else ctx.output.err(`banger: VM ${vm.name} is kept with its workspace but without its tools (retry: banger vm exec ${vm.name} -- mise install; remove: banger vm delete ${vm.name})`);
    throw err;
  }
}
