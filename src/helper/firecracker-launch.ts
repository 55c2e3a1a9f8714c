// bangerd-root's vmm.launchFirecracker: checks every field (firecracker-checks.ts), then starts Firecracker for one
// VM. Under the jailer (docs/jailer.md, v1.16.1): a jail in a root-owned base directory (firecracker-jail.ts), the
// VM's files hard-linked into it with the owner's rights, the owner's uid/gid, cgroup v2 limits matching the
// VM's size, the helper's network namespace, --new-pid-ns and --daemonize; the jailer writes the pid file.
// Without the jailer (jailer_bin = "", for development hosts) Firecracker runs as the owner, detached, and the
// pid file is ours. Either way the pid handed back is checked to be that VM's Firecracker, run as the owner.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { LaunchFirecrackerParams } from '../protocol/privileged-ops.ts';
import { asOwner, ownerArgv, type Owner } from '../system/as-owner.ts';
import { pollUntil, type Clock } from '../system/clock.ts';
import { JAIL_NAMES, type FirecrackerLayout } from '../system/firecracker-layout.ts';
import { firecrackerProcessProblem, isStartingFirecracker, type FirecrackerIdentity } from '../system/firecracker-process.ts';
import { readPidFile } from '../system/pid-file.ts';
import { lastLines, type ProcessRunner } from '../system/process.ts';
import { checkFirecrackerSpec, resolveFirecrackerProgram, type CheckedSpec } from './firecracker-checks.ts';
import { emptyJail, linkIntoJail, makeJail } from './firecracker-jail.ts';
import { createFresh, removeStale } from './helper-checks.ts';
import { refuse } from './refusal.ts';

export interface FirecrackerLaunchScope {
  owner: Owner;
  /** Real paths of the owner's banger directories, fixed when the helper started. */
  stateDir: string;
  cacheDir: string;
  netnsDir: string;
  procDir: string;
  /** The jailer's chroot base: a directory only root may change. */
  jailBase: string;
  /** HelperService's namespace check: the helper's own namespace, which must exist. */
  netns(value: unknown): string | null;
  /** HelperService's tap check, as vmm.launchQemu's: an existing tap of the owner's, on the helper's bridge. */
  refuseUnlessOwnersTap(netns: string | null, tap: string): Promise<void>;
}

export interface FirecrackerLaunchDeps {
  /** Runs the jailer; no death signal, since the VM must outlive a helper restart. */
  runner: ProcessRunner;
  clock: Clock;
  /** Starts a program detached (its own session, no stdio) and returns its pid; Firecracker without the jailer. */
  spawnDetached?: (argv: string[]) => number;
}

/** How long the jailer's child has to become Firecracker, and Firecracker to open its API socket. */
const START_MS = 10_000;
/** Guest memory is not all the process uses: Firecracker itself, its device buffers. */
const MEMORY_OVERHEAD_MIB = 256;
const CPU_PERIOD_US = 100_000;

const JAIL_HINT = 'check the jailer binary (vmm.jailer_bin in config.toml), or set jailer_bin = "" to run Firecracker without it on a development host';

function defaultSpawnDetached(argv: string[]): number {
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: 'ignore' });
  child.unref();
  if (child.pid === undefined) throw new BangerError('VMM_FAILED', `could not start ${argv[0]}`);
  return child.pid;
}

export class FirecrackerLauncher {
  private readonly scope: FirecrackerLaunchScope;
  private readonly deps: FirecrackerLaunchDeps;

  constructor(scope: FirecrackerLaunchScope, deps: FirecrackerLaunchDeps) {
    this.scope = scope;
    this.deps = deps;
  }

  async launch(raw: LaunchFirecrackerParams, ctx: { signal: AbortSignal }): Promise<{ pid: number }> {
    const { owner } = this.scope;
    const firecracker = resolveFirecrackerProgram(raw.firecracker, 'firecracker', 'firecracker binary');
    const jailer = raw.jailer === null ? null : resolveFirecrackerProgram(raw.jailer, 'jailer', 'jailer binary');
    const execName = path.basename(firecracker);
    const spec = checkFirecrackerSpec(raw.spec, { owner, stateDir: this.scope.stateDir, cacheDir: this.scope.cacheDir, execName, jailBase: jailer === null ? null : this.scope.jailBase });
    const netns = this.scope.netns(raw.netns);
    if (spec.tap !== null) await this.scope.refuseUnlessOwnersTap(netns, spec.tap);
    const { layout } = spec;
    const who: FirecrackerIdentity = { execName, jailId: layout.jailId, uid: owner.uid };
    if (firecrackerProcessProblem(this.readPid(layout.pidFile), who, this.scope.procDir) === null) {
      throw new BangerError('VMM_FAILED', `Firecracker of VM ${spec.vmId} is already running`, { hint: `stop it first: banger vm stop ${spec.vmId}` });
    }
    // Everything is checked: from here on the host is changed. Firecracker opens these by name and follows
    // symlinks: fresh files made here, with the owner's rights.
    asOwner(owner, () => {
      for (const file of [spec.serialLog, layout.logFile, layout.metricsFile]) createFresh(file, 'Firecracker output file');
    });
    try {
      const pid = jailer === null
        ? await this.launchUnjailed(firecracker, layout, netns)
        : await this.launchJailed({ jailer, firecracker, spec, netns, who, signal: ctx.signal });
      await this.waitForApiSocket(pid, spec);
      // Checked again once Firecracker is up: this is the pid bangerd keeps and signals.
      return { pid: await this.checkedPid(pid, who, `the process started for ${layout.jailId} (pid ${pid})`) };
    } catch (err) {
      // A refused or failed start leaves no links to the VM's files in the jail; no process is signalled, as
      // the pid file may name anything.
      try {
        if (layout.chroot !== null && fs.existsSync(layout.chroot)) emptyJail(owner, layout.chroot);
      } catch {
        // The launch's own error says more; makeJail empties the jail again at the next launch.
      }
      throw err;
    }
  }

  private readPid(file: string): number | null {
    try {
      return readPidFile(file, this.scope.owner);
    } catch {
      return null;
    }
  }

  private async launchUnjailed(firecracker: string, layout: FirecrackerLayout, netns: string | null): Promise<number> {
    asOwner(this.scope.owner, () => {
      for (const file of [layout.apiSocket, layout.vsockSocket, layout.pidFile]) removeStale(file);
    });
    let argv = [...ownerArgv(this.scope.owner), firecracker, '--id', layout.jailId, '--api-sock', layout.apiSocket];
    if (netns) argv = ['ip', 'netns', 'exec', netns, ...argv];
    // ip netns exec and setpriv exec what follows, so the pid becomes Firecracker's.
    const pid = (this.deps.spawnDetached ?? defaultSpawnDetached)(argv);
    asOwner(this.scope.owner, () => {
      createFresh(layout.pidFile, 'pid file');
      fs.writeFileSync(layout.pidFile, `${pid}\n`);
    });
    return pid;
  }

  private async launchJailed(o: { jailer: string; firecracker: string; spec: CheckedSpec; netns: string | null; who: FirecrackerIdentity; signal: AbortSignal }): Promise<number> {
    const { spec } = o;
    const { layout } = spec;
    const chroot = layout.chroot!;
    makeJail({ owner: this.scope.owner, jailBase: this.scope.jailBase, chroot });
    for (const f of [...spec.files, { host: spec.serialLog, name: JAIL_NAMES.serial }, { host: layout.logFile, name: JAIL_NAMES.log }, { host: layout.metricsFile, name: JAIL_NAMES.metrics }]) {
      linkIntoJail(this.scope.owner, f.host, path.join(chroot, f.name));
    }
    const { uid, gid } = this.scope.owner;
    const memoryBytes = (spec.memoryMib + MEMORY_OVERHEAD_MIB) * 1024 * 1024;
    const argv = [
      '--id', layout.jailId, '--exec-file', o.firecracker, '--uid', String(uid), '--gid', String(gid),
      '--cgroup-version', '2', '--cgroup', `cpu.max=${spec.vcpus * CPU_PERIOD_US} ${CPU_PERIOD_US}`, '--cgroup', `memory.max=${memoryBytes}`,
      '--chroot-base-dir', this.scope.jailBase,
      ...(o.netns ? ['--netns', path.join(this.scope.netnsDir, o.netns)] : []),
      '--daemonize', '--new-pid-ns', '--', '--api-sock', `/${JAIL_NAMES.apiSocket}`,
    ];
    const result = await this.deps.runner.run(o.jailer, argv, { signal: o.signal, timeoutMs: 30_000 });
    if (result.code !== 0) {
      throw new BangerError('VMM_FAILED', `the jailer did not start Firecracker: ${lastLines(result.stderr, 3) || `exit ${result.code ?? result.signal}`}`, { hint: JAIL_HINT });
    }
    // With --new-pid-ns the jailer writes its child's pid before it exits; the child then becomes Firecracker.
    // The file is in the jail, which the owner can write to.
    const pid = this.readPid(layout.pidFile);
    if (pid === null) throw new BangerError('VMM_FAILED', `the jailer wrote no usable pid file (${layout.pidFile})`, { hint: JAIL_HINT });
    return this.checkedPid(pid, o.who, `the jailer's pid file of ${layout.jailId} names process ${pid}`);
  }

  /**
   * `pid` once it is the VM's Firecracker run as the owner. A process that carries the jail id on its command
   * line (the jailer's child, `ip netns exec` or setpriv before their exec) is waited for; any other process is
   * refused at once (HELPER_REFUSED), and one that exits is a failed start (VMM_FAILED).
   */
  private async checkedPid(pid: number, who: FirecrackerIdentity, subject: string): Promise<number> {
    const procDir = this.scope.procDir;
    const problem = await pollUntil(() => {
      const p = firecrackerProcessProblem(pid, who, procDir);
      return p !== null && isStartingFirecracker(pid, who.jailId, procDir) ? undefined : { p };
    }, { clock: this.deps.clock, timeoutMs: START_MS, intervalMs: 20 });
    const reason = problem?.p ?? firecrackerProcessProblem(pid, who, procDir);
    if (reason === null) return pid;
    if (reason === 'no such process' || reason === 'it has exited') {
      throw new BangerError('VMM_FAILED', `Firecracker of ${who.jailId} exited right after it started`, {
        hint: 'see firecracker.log in the VM\'s directory; check the Firecracker binary (vmm.firecracker_bin in config.toml)',
      });
    }
    refuse(`${subject}, which is not banger's: ${reason}`);
  }

  private async waitForApiSocket(pid: number, spec: CheckedSpec): Promise<void> {
    const { layout } = spec;
    const ready = await pollUntil(() => {
      if (fs.existsSync(layout.apiSocket)) return true;
      return running(pid, this.scope.procDir) ? undefined : false;
    }, { clock: this.deps.clock, timeoutMs: START_MS, intervalMs: 20 });
    if (ready !== true) {
      throw new BangerError('VMM_FAILED', `Firecracker of VM ${spec.vmId} ${ready === false ? 'exited' : 'did not open its API socket'} right after it started`, {
        hint: `see ${layout.logFile}; check the Firecracker binary (vmm.firecracker_bin in config.toml)`,
      });
    }
  }
}

/** Whether `pid` still runs (a zombie does not): the process just started, known to be ours or checked already. */
function running(pid: number, procDir: string): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`${procDir}/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
