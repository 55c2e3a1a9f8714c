// bangerd-root's vmm.launchFirecracker: checks every field, then starts Firecracker for one VM. Under the jailer
// (docs/jailer.md, v1.16.1): a jail in a root-owned base directory, the VM's files hard-linked into it with the
// owner's rights (never copied), the owner's uid/gid, cgroup v2 limits matching the VM's size, the helper's
// network namespace, --new-pid-ns and --daemonize; the jailer writes the pid file. Without the jailer
// (jailer_bin = "", for development hosts) Firecracker runs as the owner, detached, and the pid file is ours.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { LaunchFirecrackerParams } from '../protocol/privileged-ops.ts';
import { asOwner, ownerArgv, type Owner } from '../system/as-owner.ts';
import { pollUntil, type Clock } from '../system/clock.ts';
import { findExecutable } from '../system/executable.ts';
import { firecrackerLayout, JAIL_NAMES, type FirecrackerLayout } from '../system/firecracker-layout.ts';
import { isFirecrackerProcess } from '../system/firecracker-process.ts';
import { readPidFile } from '../system/pid-file.ts';
import { lastLines, type ProcessRunner } from '../system/process.ts';
import { VM_ID_PATTERN, createFresh, int, matching, removeStale } from './helper-checks.ts';
import { refuse } from './refusal.ts';

export interface FirecrackerLaunchScope {
  owner: Owner;
  stateDir: string;
  cacheDir: string;
  netnsDir: string;
  procDir: string;
  /** The jailer's chroot base: a directory only root may change. */
  jailBase: string;
  /** HelperService's path check: a path under `roots` (real, symlinks resolved). */
  insidePath(value: unknown, roots: readonly string[], what: string, mustExist: boolean): string;
  /** HelperService's namespace check: the helper's own namespace, which must exist. */
  netns(value: unknown): string | null;
}

export interface FirecrackerLaunchDeps {
  /** Runs the jailer; no death signal, since the VM must outlive a helper restart. */
  runner: ProcessRunner;
  clock: Clock;
  /** Starts a program detached (its own session, no stdio) and returns its pid; Firecracker without the jailer. */
  spawnDetached?: (argv: string[]) => number;
}

/** How long the jailer's daemon child has to write the pid file, and Firecracker to open its API socket. */
const START_MS = 10_000;
/** Guest memory is not all the process uses: Firecracker itself, its device buffers. */
const MEMORY_OVERHEAD_MIB = 256;
const CPU_PERIOD_US = 100_000;

const JAIL_HINT = 'check the jailer binary (vmm.jailer_bin in config.toml), or set jailer_bin = "" to run Firecracker without it on a development host';

/** A program by absolute path or on PATH whose file name contains `word` (firecracker, jailer). */
function program(value: unknown, word: string, what: string): string {
  const name = matching(value, /^[a-zA-Z0-9_./-]{1,200}$/, what);
  if (!path.basename(name).includes(word)) refuse(`${what} ${name} must be a program whose name contains "${word}"`);
  return fs.realpathSync(findExecutable(name));
}

function defaultSpawnDetached(argv: string[]): number {
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: 'ignore' });
  child.unref();
  if (child.pid === undefined) throw new BangerError('VMM_FAILED', `could not start ${argv[0]}`);
  return child.pid;
}

interface CheckedSpec {
  vmId: string;
  vmDir: string;
  vcpus: number;
  memoryMib: number;
  /** Host path → the name it gets in the jail. */
  files: Array<{ host: string; name: string }>;
  serialLog: string;
}

export class FirecrackerLauncher {
  private readonly scope: FirecrackerLaunchScope;
  private readonly deps: FirecrackerLaunchDeps;

  constructor(scope: FirecrackerLaunchScope, deps: FirecrackerLaunchDeps) {
    this.scope = scope;
    this.deps = deps;
  }

  /** The spec's values: ids, sizes within Firecracker's limits, every file inside banger's directories. */
  check(raw: LaunchFirecrackerParams['spec']): CheckedSpec {
    const { stateDir, cacheDir } = this.scope;
    const roots = [stateDir, cacheDir];
    const vmId = matching(raw.vmId, VM_ID_PATTERN, 'vm id');
    const serialLog = this.scope.insidePath(raw.serialLog, [stateDir], 'serial log', false);
    const vmDir = path.dirname(serialLog);
    if (path.basename(vmDir) !== vmId) refuse(`serial log ${raw.serialLog} is not in the directory of VM ${vmId}`);
    if (raw.drives.length < 1 || raw.drives.length > 8) refuse('drives must be a list of 1 to 8');
    const ids = new Set<string>();
    const files = [
      { host: this.scope.insidePath(raw.kernelPath, roots, 'kernel', true), name: JAIL_NAMES.kernel },
      { host: this.scope.insidePath(raw.initrdPath, roots, 'initrd', true), name: JAIL_NAMES.initrd },
      ...raw.drives.map((d, i) => {
        // Firecracker's drive ids: letters, digits and underscores (parsed_request.rs checked_id).
        const id = matching(d.id, /^[a-z][a-z0-9_]{0,15}$/, `drive ${i} id`);
        if (ids.has(id)) refuse(`drive id ${id} is given twice`);
        ids.add(id);
        return { host: this.scope.insidePath(d.path, roots, `drive ${id}`, true), name: JAIL_NAMES.drive(id) };
      }),
      ...(raw.snapshot === null ? [] : [
        { host: this.scope.insidePath(raw.snapshot.statePath, [stateDir], 'snapshot state', true), name: JAIL_NAMES.snapshotState },
        { host: this.scope.insidePath(raw.snapshot.memPath, [stateDir], 'snapshot memory', true), name: JAIL_NAMES.snapshotMem },
      ]),
    ];
    return { vmId, vmDir, vcpus: int(raw.vcpus, 1, 32, 'vcpus'), memoryMib: int(raw.memoryMib, 128, 1024 * 1024, 'memory'), files, serialLog };
  }

  async launch(raw: LaunchFirecrackerParams, ctx: { signal: AbortSignal }): Promise<{ pid: number }> {
    const firecracker = program(raw.firecracker, 'firecracker', 'firecracker binary');
    const jailer = raw.jailer === null ? null : program(raw.jailer, 'jailer', 'jailer binary');
    const spec = this.check(raw.spec);
    const netns = this.scope.netns(raw.netns);
    const execName = path.basename(firecracker);
    const layout = firecrackerLayout({ vmDir: spec.vmDir, vmId: spec.vmId, execName, jailBase: jailer === null ? null : this.scope.jailBase });
    const who = { execName, jailId: layout.jailId };
    if (isFirecrackerProcess(this.readPid(layout.pidFile), who, this.scope.procDir)) {
      throw new BangerError('VMM_FAILED', `Firecracker of VM ${spec.vmId} is already running`, { hint: `stop it first: banger vm stop ${spec.vmId}` });
    }
    // Firecracker opens these by name and follows symlinks: fresh files made here, with the owner's rights.
    asOwner(this.scope.owner, () => {
      for (const file of [spec.serialLog, layout.logFile, layout.metricsFile]) createFresh(file, 'Firecracker output file');
    });
    const pid = jailer === null
      ? await this.launchUnjailed(firecracker, layout, netns)
      : await this.launchJailed({ jailer, firecracker, layout, spec, netns, signal: ctx.signal });
    const socket = await pollUntil(() => (fs.existsSync(layout.apiSocket) ? true : running(pid, this.scope.procDir) ? undefined : false), {
      clock: this.deps.clock, timeoutMs: START_MS, intervalMs: 20,
    });
    if (socket !== true) {
      throw new BangerError('VMM_FAILED', `Firecracker of VM ${spec.vmId} ${socket === false ? 'exited' : 'did not open its API socket'} right after it started`, {
        hint: `see ${layout.logFile}; check the Firecracker binary (vmm.firecracker_bin in config.toml)`,
      });
    }
    return { pid };
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
    // ip netns exec and setpriv exec what follows, so the pid is Firecracker's.
    const pid = (this.deps.spawnDetached ?? defaultSpawnDetached)(argv);
    asOwner(this.scope.owner, () => {
      createFresh(layout.pidFile, 'pid file');
      fs.writeFileSync(layout.pidFile, `${pid}\n`);
    });
    return pid;
  }

  private async launchJailed(o: { jailer: string; firecracker: string; layout: FirecrackerLayout; spec: CheckedSpec; netns: string | null; signal: AbortSignal }): Promise<number> {
    const { layout, spec } = o;
    const chroot = layout.chroot!;
    this.makeJail(chroot);
    asOwner(this.scope.owner, () => {
      for (const f of [...spec.files, { host: spec.serialLog, name: JAIL_NAMES.serial }, { host: layout.logFile, name: JAIL_NAMES.log }, { host: layout.metricsFile, name: JAIL_NAMES.metrics }]) {
        link(f.host, path.join(chroot, f.name));
      }
    });
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
    // --daemonize: the jailer's first process returns before its child writes the pid file.
    const who = { execName: path.basename(o.firecracker), jailId: layout.jailId };
    const pid = await pollUntil(() => {
      const p = this.readPid(layout.pidFile);
      return p !== null && isFirecrackerProcess(p, who, this.scope.procDir) ? p : undefined;
    }, { clock: this.deps.clock, timeoutMs: START_MS, intervalMs: 20, signal: o.signal });
    if (pid === undefined) {
      throw new BangerError('VMM_FAILED', `the jailer wrote no pid file naming a running Firecracker (${layout.pidFile})`, { hint: JAIL_HINT });
    }
    return pid;
  }

  /**
   * An empty jail at <base>/<exec name>/<jail id>/root: the last run's is removed first (its contents with the
   * owner's rights, as the owner could have put anything there; the directories, then empty, as root). Root
   * owns every directory above the jail's root, which belongs to the owner, as the jailer would leave it.
   */
  private makeJail(chroot: string): void {
    const idDir = path.dirname(chroot);
    if (fs.existsSync(chroot)) {
      asOwner(this.scope.owner, () => {
        for (const entry of fs.readdirSync(chroot)) fs.rmSync(path.join(chroot, entry), { recursive: true, force: true });
      });
      fs.rmdirSync(chroot);
    }
    if (fs.existsSync(idDir)) fs.rmdirSync(idDir);
    if (!fs.existsSync(this.scope.jailBase)) fs.mkdirSync(this.scope.jailBase, { recursive: true, mode: 0o711 });
    for (const dir of [this.scope.jailBase, path.dirname(idDir), idDir]) {
      if (fs.existsSync(dir)) continue;
      fs.mkdirSync(dir);
      // Traversable, so bangerd (the owner) reaches the API socket in the jail; nothing else to read there.
      fs.chmodSync(dir, 0o711);
    }
    fs.mkdirSync(chroot, { mode: 0o700 });
    fs.chownSync(chroot, this.scope.owner.uid, this.scope.owner.gid);
  }
}

/** Whether `pid` still runs (a zombie does not): the process just started, whose pid is known to be its. */
function running(pid: number, procDir: string): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`${procDir}/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** A hard link: the jail sees the VM's own files, whatever their size, at no copying cost. */
function link(from: string, to: string): void {
  try {
    fs.linkSync(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EXDEV') {
      throw new BangerError('VMM_FAILED', `${from} cannot be linked into the jail ${path.dirname(to)}: they are on different file systems`, {
        hint: "keep banger's directories (BANGER_HOME) on the file system of the jail base (/srv/jailer)",
        cause: err,
      });
    }
    throw err;
  }
}
