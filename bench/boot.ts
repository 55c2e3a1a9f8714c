// Boot benchmark: `banger vm run --rm -- true` against the same work done by hand in the same run.
//
// "By hand" starts QEMU directly with what banger uses: the same kernel, base initrd, image, bridge, vCPUs,
// memory and QEMU argv (buildQemuArgv + guestCmdline), a qcow2 overlay over the same image, a fresh sparse
// work disk, a per-VM initrd with a fresh host key, a tap, an ssh poll every 250 ms, `ssh true`, QMP quit,
// and removal of the tap and files. The ratio of the medians is printed; it never fails on the ratio.
//
// Everything network-related happens inside a network namespace this script creates (banger gets it through
// BANGER_NETNS). On exit, error or Ctrl-C it deletes its VMs, kills its own QEMU processes (found by the
// BANGER_HOME path in their command line), stops the daemons of its BANGER_HOME and deletes the namespace.
//
// A sample is split the same way on both sides: prep (start → the VM's QEMU process started, from its start time
// in /proc), boot to ssh (→ the command's ssh starts), command (that ssh's run) and teardown (→ the end). The
// command's ssh is timed by an ssh shim on PATH (bash, $EPOCHREALTIME) that both sides go through; readiness polls
// (BatchMode) pass straight through it.
//
// Environment: BANGER_BENCH_HOME (default: a fresh directory under /var/tmp, removed at the end, so the run meets
// banger as a new user does: the warm-up builds the image and kernel and makes the KVM decision), BENCH_ITERATIONS
// (default 5: a TCG guest boot varies by a second or two), BENCH_VERBOSE=1 (print banger's progress lines for every sample).
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { buildQemuArgv, guestCmdline } from '../src/system/qemu-argv.ts';
import type { QemuLaunchSpec } from '../src/protocol/privileged-ops.ts';
import { hostTscKhz, qemuBootKernel } from '../src/vmm/qemu/qemu-driver.ts';
import { vmFilesIn } from '../src/vmm/driver.ts';
import { qmpCommand } from '../src/vmm/qemu/qmp.ts';
import { buildVmConfigArchive } from '../src/kernel/initrd.ts';
import { WORK_LABEL } from '../src/system/guest-contract.ts';
import { sshCommand } from '../src/protocol/ssh-command.ts';
import type { ImageInfo, KernelInfo, SshTarget, VmInfo } from '../src/protocol/methods.ts';
import { resolvePaths } from '../src/system/paths.ts';
import { loadConfig } from '../src/system/config.ts';
import { NodeProcessRunner, type RunOptions, type RunResult } from '../src/system/process.ts';
import { isSocketAlive } from '../src/system/socket-server.ts';
import { epochMs, processStartMs } from './bench-proc.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BANGER = path.join(REPO, 'bin', 'banger');
const KEEP_HOME = Boolean(process.env.BANGER_BENCH_HOME);
const HOME = KEEP_HOME ? path.resolve(process.env.BANGER_BENCH_HOME!) : fs.mkdtempSync('/var/tmp/banger-bench-');
/** Every file of ours (banger's VMs and the by-hand ones) lives under this prefix; so do our QEMU command lines. */
const HOME_PREFIX = `${HOME}/`;
const HAND_DIR = path.join(HOME, 'bench');
const NETNS = `banger-bench-${process.pid}`;
const SHIM_DIR = path.join(HOME, 'bench-shim');
const SSH_LOG = path.join(SHIM_DIR, 'ssh.log');
const REAL_SSH = findOnPath('ssh');
installSshShim();
// Everything below (banger's CLI and daemons, the by-hand steps) finds the shim first.
process.env.PATH = `${SHIM_DIR}:${process.env.PATH ?? '/usr/bin:/bin'}`;
const ENV: NodeJS.ProcessEnv = { ...process.env, BANGER_HOME: HOME, BANGER_NETNS: NETNS };
const PATHS = resolvePaths(ENV);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const SSH_POLL_MS = 250;
const SSH_TIMEOUT_MS = 180_000;
const GOAL = 1.05;

const runner = new NodeProcessRunner();
const controller = new AbortController();
const signal = controller.signal;

class Aborted extends Error {}

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function note(text: string): void {
  process.stderr.write(`bench/boot: ${text}\n`);
}

function now(): number {
  return performance.now();
}


function findOnPath(name: string): string {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  throw new Error(`${name} is not on PATH`);
}

/** An ssh that records when each interactive (non-BatchMode) ssh starts and ends, then runs the real one. */
function installSshShim(): void {
  fs.mkdirSync(SHIM_DIR, { recursive: true });
  fs.writeFileSync(path.join(SHIM_DIR, 'ssh'), `#!/bin/bash
case " $* " in *" BatchMode=yes "*|*" -O "*) exec ${REAL_SSH} "$@";; esac
echo "$EPOCHREALTIME start" >> ${SSH_LOG}
${REAL_SSH} "$@"
rc=$?
echo "$EPOCHREALTIME end" >> ${SSH_LOG}
exit $rc
`, { mode: 0o755 });
}

/** The command ssh of the sample that just ran: when it started and ended (epoch ms), or null when the shim saw none. */
function commandSshMarks(): { start: number; end: number } | null {
  let lines: string[] = [];
  try {
    lines = fs.readFileSync(SSH_LOG, 'utf8').trim().split('\n');
  } catch {
    return null;
  }
  const at = (what: string): number | null => {
    const line = lines.find((l) => l.endsWith(` ${what}`));
    return line ? Number(line.split(' ')[0]) * 1000 : null;
  };
  const start = at('start');
  const end = at('end');
  return start !== null && end !== null ? { start, end } : null;
}

function secs(ms: number | null): string {
  return ms === null ? '   ?' : (ms / 1000).toFixed(2);
}

function throwIfAborted(): void {
  if (signal.aborted) throw new Aborted('interrupted');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Aborted('interrupted'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Aborted('interrupted'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs a program; aborted (killed) when the benchmark is interrupted, unless `cleanup` is set. */
async function run(command: string, args: readonly string[], options: RunOptions & { cleanup?: boolean } = {}): Promise<RunResult> {
  const { cleanup, ...rest } = options;
  if (!cleanup) throwIfAborted();
  const result = await runner.run(command, args, { ...(cleanup ? {} : { signal }), ...rest });
  if (!cleanup) throwIfAborted();
  return result;
}

async function check(command: string, args: readonly string[], options: RunOptions & { cleanup?: boolean } = {}): Promise<RunResult> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const detail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-8).join('\n');
    throw new Error(`${command} ${args.join(' ')} failed (${result.code ?? result.signal}):\n${detail}`);
  }
  return result;
}

function banger(args: readonly string[], options: RunOptions & { cleanup?: boolean } = {}): Promise<RunResult> {
  return run(BANGER, args, { env: ENV, ...options });
}

async function bangerJson<T>(args: readonly string[]): Promise<T> {
  const result = await check(BANGER, [...args, '--json'], { env: ENV, timeoutMs: 60_000 });
  return JSON.parse(result.stdout) as T;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes of ours, found through /proc.

function cmdlineOf(pid: number | string): string[] | null {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw === '' ? null : raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

function isZombie(pid: number): boolean {
  try {
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** QEMU processes whose command line names a file under our BANGER_HOME. */
function ourQemuPids(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = cmdlineOf(entry);
    if (!argv || !path.basename(argv[0]!).startsWith('qemu-system')) continue;
    if (argv.some((a) => a.includes(HOME_PREFIX)) && !isZombie(Number(entry))) pids.push(Number(entry));
  }
  return pids;
}

async function killOurQemu(): Promise<number> {
  const pids = ourQemuPids();
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  for (let i = 0; i < 100 && ourQemuPids().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
  return pids.length;
}

/** Clock ticks per second of /proc's start times. */

/**
 * Watches /proc during one sample for the VM's QEMU: a qemu-system process with a `-name` (the KVM probe has
 * none) and a file under our BANGER_HOME. Its start time comes from /proc, so the 100 ms polling costs no precision.
 */
class QemuWatcher {
  qemuStart: number | null = null;
  private timer: NodeJS.Timeout | null = null;

  start(): void {
    this.timer = setInterval(() => this.scan(), 100);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.scan();
  }

  private scan(): void {
    if (this.qemuStart !== null) return;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const argv = cmdlineOf(entry);
      if (!argv || !path.basename(argv[0]!).startsWith('qemu-system') || !argv.includes('-name')) continue;
      if (!argv.some((a) => a.includes(HOME_PREFIX))) continue;
      this.qemuStart = processStartMs(Number(entry));
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Samples.

interface Sample {
  kind: 'banger' | 'by-hand';
  totalMs: number;
  prepMs: number;
  bootMs: number;
  commandMs: number;
  teardownMs: number;
  /** banger only: from the CLI's start to its spec line (CLI start, daemon RPC, kernel/image/accel checks). */
  specMs?: number | null;
  /** by-hand only: ssh readiness attempts. */
  polls?: number;
}

type Phase = 'prepMs' | 'bootMs' | 'commandMs' | 'teardownMs';
const PHASES: ReadonlyArray<[Phase, string]> = [['prepMs', 'prep'], ['bootMs', 'boot to ssh'], ['commandMs', 'command'], ['teardownMs', 'teardown']];

/** Splits a sample at the QEMU start and the command ssh's start and end; every mark must be there, in order. */
function phases(kind: Sample['kind'], t0: number, t1: number, qemuStart: number | null): Sample {
  const ssh = commandSshMarks();
  if (qemuStart === null) throw new Error(`${kind} sample: no QEMU process of the VM was seen`);
  if (ssh === null) throw new Error(`${kind} sample: the ssh shim saw no command ssh (log ${SSH_LOG})`);
  const marks = [t0, qemuStart, ssh.start, ssh.end, t1];
  // A process start time is known to a clock tick (10 ms); allow that much disorder at the first mark.
  for (let i = 1; i < marks.length; i++) {
    if (marks[i]! < marks[i - 1]! - (i === 1 ? 10 : 0)) throw new Error(`${kind} sample: phase marks out of order: ${marks.map((m) => (m - t0).toFixed(0)).join(', ')} ms`);
  }
  const prepMs = Math.max(0, qemuStart - t0);
  return { kind, totalMs: t1 - t0, prepMs, bootMs: ssh.start - t0 - prepMs, commandMs: ssh.end - ssh.start, teardownMs: t1 - ssh.end };
}

async function bangerSample(): Promise<Sample> {
  const watcher = new QemuWatcher();
  const lines: string[] = [];
  let specAt: number | null = null;
  fs.writeFileSync(SSH_LOG, '');
  const t0 = now();
  const e0 = epochMs();
  watcher.start();
  let result: RunResult;
  try {
    result = await banger(['vm', 'run', '--rm', '--', 'true'], {
      timeoutMs: SSH_TIMEOUT_MS + 120_000,
      onLine: (line, stream) => {
        const t = now();
        if (stream === 'stderr' && specAt === null && /vCPU/.test(line)) specAt = t;
        lines.push(`${((t - t0) / 1000).toFixed(2).padStart(7)}s ${line}`);
      },
    });
  } finally {
    watcher.stop();
  }
  const t1 = now();
  const e1 = epochMs();
  if (result.code !== 0) {
    throw new Error(`banger vm run --rm -- true exited ${result.code ?? result.signal}:\n${lines.join('\n')}`);
  }
  if (VERBOSE) for (const line of lines) log(`      | ${line}`);
  return { ...phases('banger', e0, e1, watcher.qemuStart), specMs: specAt === null ? null : specAt - t0 };
}

interface HandSetup {
  qemu: string;
  accel: 'kvm' | 'tcg';
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  kernel: KernelInfo;
  image: ImageInfo;
  bridge: string;
  gateway: string;
  ip: string;
  sshKey: string;
}

/** The by-hand VM in flight, for the cleanup. */
let handInFlight: { dir: string; pidFile: string; tap: string; vmName: string } | null = null;

function qemuAlive(pid: number, vmName: string): boolean {
  const argv = cmdlineOf(pid);
  return argv !== null && argv.join(' ').includes(vmName) && !isZombie(pid);
}

async function waitExit(pid: number, vmName: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!qemuAlive(pid, vmName)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !qemuAlive(pid, vmName);
}

async function byHandSample(s: HandSetup): Promise<Sample> {
  const id = crypto.randomBytes(6).toString('hex');
  const dir = path.join(HAND_DIR, `hand-${id}`);
  const tap = `bhand${id.slice(0, 8)}`;
  const mac = `52:54:00:${id.slice(6, 8)}:${id.slice(8, 10)}:${id.slice(10, 12)}`;
  const files = {
    ...vmFilesIn(dir),
    hostKey: path.join(dir, 'ssh_host_ed25519_key'),
    knownHosts: path.join(dir, 'known_hosts'),
  };
  const spec: QemuLaunchSpec = {
    vmId: id,
    accel: s.accel,
    vcpus: s.vcpus,
    memoryMib: s.memoryMib,
    kernelPath: qemuBootKernel(s.kernel.kernelPath),
    initrdPath: files.initrd,
    cmdline: guestCmdline({ accel: s.accel, tscKhz: hostTscKhz() }),
    disks: [
      { id: 'root', path: files.rootDisk, format: 'qcow2' },
      { id: 'work', path: files.workDisk, format: 'raw' },
    ],
    net: { tap, mac },
    qmpSocket: files.qmpSocket,
    agentSocket: files.agentSocket,
    serialLog: files.serialLog,
    pidFile: files.pidFile,
  };
  const vmName = `banger-${id}`;
  const target: SshTarget = {
    vmId: id, name: 'bench-hand', ip: s.ip, user: 'root', keyPath: s.sshKey, knownHostsPath: files.knownHosts,
    hostKeyAlias: vmName, netns: NETNS, workdir: '/root',
  };
  const watcher = new QemuWatcher();
  handInFlight = { dir, pidFile: files.pidFile, tap, vmName };

  let polls = 0;
  fs.writeFileSync(SSH_LOG, '');
  const e0 = epochMs();
  watcher.start();
  try {
    // Files: host key (pinned in known_hosts), copy-on-write root disk, sparse work disk, per-VM initrd.
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    await check('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', vmName, '-f', files.hostKey]);
    const hostKeyPub = fs.readFileSync(`${files.hostKey}.pub`, 'utf8');
    fs.writeFileSync(files.knownHosts, `${vmName} ${hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`);
    await check('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', s.image.path, '-F', 'raw', files.rootDisk]);
    const fd = fs.openSync(files.workDisk, 'w', 0o600);
    fs.ftruncateSync(fd, s.diskGib * 1024 ** 3);
    fs.closeSync(fd);
    await check('mkfs.ext4', ['-q', '-F', '-L', WORK_LABEL, '-E', 'root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1', files.workDisk]);
    const config = buildVmConfigArchive({
      hostname: 'bench-hand', ip: s.ip, prefix: 24, gateway: s.gateway, machineId: crypto.randomBytes(16).toString('hex'),
      authorizedKeys: fs.readFileSync(`${s.sshKey}.pub`, 'utf8'), hostKey: fs.readFileSync(files.hostKey, 'utf8'), hostKeyPub,
    });
    fs.writeFileSync(files.initrd, Buffer.concat([fs.readFileSync(s.kernel.initrdPath), config]), { mode: 0o600 });
    fs.writeFileSync(files.serialLog, '');

    // Network: a tap on the bridge, inside our namespace.
    await check('ip', ['-n', NETNS, 'tuntap', 'add', 'dev', tap, 'mode', 'tap', 'user', '0', 'group', '0']);
    await check('ip', ['-n', NETNS, 'link', 'set', 'dev', tap, 'master', s.bridge, 'up']);

    // QEMU, daemonized, in the namespace.
    await check('ip', ['netns', 'exec', NETNS, s.qemu, ...buildQemuArgv(spec)], { timeoutMs: 60_000 });
    const pid = Number(fs.readFileSync(files.pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`QEMU wrote no usable pid to ${files.pidFile}`);

    // Wait for sshd the way banger does: ssh true in batch mode, 250 ms apart.
    const poll = sshCommand(target, { tty: false, batch: true, connectTimeoutSec: 2, command: ['true'] });
    const deadline = Date.now() + SSH_TIMEOUT_MS;
    for (;;) {
      polls++;
      if (!qemuAlive(pid, vmName)) {
        const tail = fs.readFileSync(files.serialLog, 'utf8').trimEnd().split('\n').slice(-8).join('\n');
        throw new Error(`by-hand VM stopped while booting:\n${tail}`);
      }
      const r = await run(poll.command, poll.args, { timeoutMs: 10_000 });
      if (r.code === 0) break;
      if (Date.now() >= deadline) throw new Error(`by-hand VM: sshd did not answer within ${SSH_TIMEOUT_MS / 1000}s (console: ${files.serialLog})`);
      await sleep(SSH_POLL_MS);
    }

    // The command.
    const cmd = sshCommand(target, { tty: false, connectTimeoutSec: 10, command: ['true'] });
    await check(cmd.command, cmd.args, { timeoutMs: 60_000 });

    // Stop: QMP quit, SIGKILL if it lingers; then the tap and the files.
    try {
      await qmpCommand(files.qmpSocket, 'quit');
    } catch {
      process.kill(pid, 'SIGTERM');
    }
    if (!(await waitExit(pid, vmName, 3000))) {
      process.kill(pid, 'SIGKILL');
      await waitExit(pid, vmName, 3000);
    }
    await check('ip', ['-n', NETNS, 'link', 'del', 'dev', tap]);
    fs.rmSync(dir, { recursive: true, force: true });
  } finally {
    watcher.stop();
  }
  const e1 = epochMs();
  handInFlight = null;
  return { ...phases('by-hand', e0, e1, watcher.qemuStart), polls };
}

// ---------------------------------------------------------------------------------------------------------------
// Set-up and clean-up.

let netnsCreated = false;
let daemonsTouched = false;

/** bangerd-root names our state dir in its arguments; bangerd has our BANGER_HOME in its environment. */
function isOurDaemon(pid: number): boolean {
  const argv = cmdlineOf(pid);
  if (!argv) return false;
  if (argv.some((a) => a.endsWith('src/helper/main.ts') || a === 'helper/main')) return argv.some((a) => a.includes(HOME_PREFIX));
  if (!argv.some((a) => a.endsWith('src/daemon/main.ts') || a === 'daemon/main')) return false;
  try {
    return fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`BANGER_HOME=${HOME}`);
  } catch {
    return false;
  }
}

async function stopDaemons(): Promise<void> {
  await banger(['daemon', 'stop'], { cleanup: true, timeoutMs: 30_000 }).catch(() => undefined);
  // If they did not answer, end them by their pid files (only if the process is really a bangerd of ours).
  for (const pidFile of [PATHS.daemonPidFile, PATHS.helperPidFile]) {
    let pid: number;
    try {
      pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
    } catch {
      continue;
    }
    if (!isOurDaemon(pid)) continue;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone meanwhile.
    }
  }
}

/** Deletes every VM of our BANGER_HOME. In the clean-up only if bangerd is up; otherwise this starts it. */
async function deleteBangerVms(cleanup: boolean): Promise<number> {
  if (cleanup && !(await isSocketAlive(PATHS.daemonSocket))) return 0;
  const listed = await banger(['vm', 'list', '--json'], { cleanup, timeoutMs: 30_000 });
  if (listed.code !== 0) return 0;
  const vms = JSON.parse(listed.stdout) as VmInfo[];
  if (vms.length > 0) await banger(['vm', 'delete', ...vms.map((v) => v.id)], { cleanup, timeoutMs: 60_000 });
  return vms.length;
}

async function cleanupAll(): Promise<void> {
  const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      note(`cleanup: ${what} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (handInFlight) {
    const h = handInFlight;
    await step('stopping the by-hand VM', async () => {
      try {
        const pid = Number(fs.readFileSync(h.pidFile, 'utf8').trim());
        if (qemuAlive(pid, h.vmName)) process.kill(pid, 'SIGKILL');
      } catch {
        // No pid file: QEMU never started.
      }
    });
  }
  if (daemonsTouched) await step('deleting banger VMs', () => deleteBangerVms(true));
  await step('killing leftover QEMU', async () => {
    const n = await killOurQemu();
    if (n > 0) note(`cleanup: killed ${n} leftover QEMU process(es) of ${HOME}`);
  });
  if (daemonsTouched) await step('stopping daemons', stopDaemons);
  await step('removing by-hand files', async () => fs.rmSync(HAND_DIR, { recursive: true, force: true }));
  if (netnsCreated) {
    await step(`deleting netns ${NETNS}`, async () => {
      const r = await run('ip', ['netns', 'del', NETNS], { cleanup: true, timeoutMs: 30_000 });
      if (r.code !== 0) throw new Error(r.stderr.trim());
      netnsCreated = false;
    });
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function medianOf(samples: readonly Sample[], key: Phase | 'specMs'): number | null {
  const values = samples.map((s) => s[key]).filter((v): v is number => typeof v === 'number');
  return values.length === samples.length && values.length > 0 ? median(values) : null;
}

function describe(s: Sample): string {
  const extra = s.kind === 'banger' ? `  (spec line at ${secs(s.specMs ?? null)}s)` : `  (${s.polls} ssh polls)`;
  return `${s.kind.padEnd(7)} ${secs(s.totalMs).padStart(6)}s  ${PHASES.map(([key, label]) => `${label} ${secs(s[key]).padStart(5)}`).join('  ')}${extra}`;
}

function parseIterations(): number {
  const raw = process.env.BENCH_ITERATIONS ?? '5';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_ITERATIONS must be a whole number >= 1 (got ${JSON.stringify(raw)})`);
  return n;
}

async function main(): Promise<void> {
  const iterations = parseIterations();
  if (process.getuid?.() !== 0) throw new Error('must run as root (it creates a network namespace, a bridge and taps)');
  log(`bench/boot: banger vm run --rm -- true vs. the same work by hand; BANGER_HOME=${HOME}, netns ${NETNS}, ${iterations} iteration(s)`);
  fs.mkdirSync(HOME, { recursive: true });

  // Daemons or QEMUs left by an earlier, killed run of this benchmark (same BANGER_HOME) go first, so the
  // daemons started below see this run's namespace.
  daemonsTouched = true;
  await stopDaemons();
  const stale = await killOurQemu();
  if (stale > 0) note(`killed ${stale} QEMU process(es) left from an earlier run in ${HOME}`);
  fs.rmSync(HAND_DIR, { recursive: true, force: true });

  await check('ip', ['netns', 'add', NETNS]);
  netnsCreated = true;
  await check('ip', ['-n', NETNS, 'link', 'set', 'dev', 'lo', 'up']);
  const config = loadConfig(PATHS.configFile, ENV);

  // Warm-up (not timed): image, kernel, KVM probe cache and daemons. Kept running long enough to read its spec
  // and QEMU argv, then deleted; the daemons stay up for the timed runs, as they do for users.
  const removed = await deleteBangerVms(false);
  if (removed > 0) note(`deleted ${removed} VM(s) left from an earlier run`);
  const warmName = `bench-warmup-${process.pid}`;
  log('warm-up: banger vm run, as a new user\'s first one (builds the image and kernel, decides KVM or TCG; not in the ratio)');
  const tw = now();
  const warm = await banger(['vm', 'run', '--name', warmName, '--', 'true'], {
    timeoutMs: 30 * 60_000,
    onLine: (line) => log(`  | ${line}`),
  });
  if (warm.code !== 0) throw new Error(`warm-up banger vm run failed (exit ${warm.code ?? warm.signal})`);
  const vm = await bangerJson<VmInfo>(['vm', 'show', warmName]);
  const bangerArgv = vm.pid ? cmdlineOf(vm.pid) : null;
  const kernel = (await bangerJson<KernelInfo[]>(['kernel', 'list'])).find((k) => k.id === vm.kernel);
  const image = (await bangerJson<ImageInfo[]>(['image', 'list'])).find((i) => i.name === vm.image);
  await check(BANGER, ['vm', 'delete', warmName], { env: ENV, timeoutMs: 60_000 });
  log(`warm-up: ${secs(now() - tw)}s`);
  if (!kernel) throw new Error(`kernel ${vm.kernel} of the warm-up VM is not in banger kernel list`);
  if (!image) throw new Error(`image ${vm.image} of the warm-up VM is not in banger image list`);
  if (!bangerArgv || !path.basename(bangerArgv[0]!).startsWith('qemu-system')) throw new Error(`could not read the QEMU command line of the warm-up VM (pid ${vm.pid})`);
  if (vm.accel !== 'kvm' && vm.accel !== 'tcg') throw new Error(`warm-up VM has accel ${vm.accel}`);

  // The by-hand QEMU argv for the warm-up VM must be exactly what banger ran.
  const vmDir = path.join(PATHS.vmsDir, vm.id);
  const expected = buildQemuArgv({
    vmId: vm.id, accel: vm.accel, vcpus: vm.vcpus, memoryMib: vm.memoryMib, kernelPath: qemuBootKernel(kernel.kernelPath),
    initrdPath: path.join(vmDir, 'initrd.img'), cmdline: guestCmdline({ accel: vm.accel, tscKhz: hostTscKhz() }),
    disks: [{ id: 'root', path: path.join(vmDir, 'root.qcow2'), format: 'qcow2' }, { id: 'work', path: path.join(vmDir, 'work.ext4'), format: 'raw' }],
    net: { tap: vm.tap, mac: vm.mac }, qmpSocket: path.join(vmDir, 'qmp.sock'), agentSocket: path.join(vmDir, 'agent.sock'), serialLog: path.join(vmDir, 'serial.log'), pidFile: path.join(vmDir, 'qemu.pid'),
  });
  const actual = bangerArgv.slice(1);
  const differs = expected.length !== actual.length || expected.some((a, i) => a !== actual[i]);
  log(`spec: ${vm.vcpus} vCPU, ${vm.memoryMib} MiB, ${vm.diskGib} GiB work disk, accel ${vm.accel}, kernel ${kernel.id}, image ${image.name}, ${bangerArgv[0]}`);
  if (differs) {
    log('WARNING: the by-hand QEMU argv differs from the one banger ran for the warm-up VM:');
    log(`  banger:  ${actual.join(' ')}`);
    log(`  by hand: ${expected.join(' ')}`);
  } else {
    log('argv: by-hand QEMU argv == banger\'s (checked on the warm-up VM)');
  }

  const base = config.network.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
  const setup: HandSetup = {
    qemu: bangerArgv[0]!, accel: vm.accel, vcpus: vm.vcpus, memoryMib: vm.memoryMib, diskGib: vm.diskGib, kernel, image,
    bridge: config.network.bridge, gateway: `${base}.1`,
    // Away from the low addresses banger hands out, so the two never share an address (or an ARP entry).
    ip: `${base}.200`, sshKey: path.join(PATHS.sshDir, 'id_ed25519'),
  };
  const bridgeUp = await run('ip', ['-n', NETNS, 'link', 'show', 'dev', setup.bridge]);
  if (bridgeUp.code !== 0) throw new Error(`bridge ${setup.bridge} is missing in ${NETNS} after the warm-up`);

  const samples: Sample[] = [];
  for (let i = 1; i <= iterations; i++) {
    // ABBA order, so a drift over the run (page cache, host load) does not favour one side.
    const order = i % 2 === 1 ? (['banger', 'by-hand'] as const) : (['by-hand', 'banger'] as const);
    for (const kind of order) {
      const sample = kind === 'banger' ? await bangerSample() : await byHandSample(setup);
      samples.push(sample);
      log(`#${i} ${describe(sample)}`);
    }
  }

  const bs = samples.filter((s) => s.kind === 'banger');
  const hs = samples.filter((s) => s.kind === 'by-hand');
  const mb = median(bs.map((s) => s.totalMs));
  const mh = median(hs.map((s) => s.totalMs));
  log('');
  log(`medians       total  ${PHASES.map(([, label]) => label.padStart(11)).join(' ')}`);
  for (const [label, set] of [['banger', bs], ['by-hand', hs]] as const) {
    log(`  ${label.padEnd(9)} ${secs(median(set.map((s) => s.totalMs))).padStart(6)}s  ${PHASES.map(([key]) => secs(medianOf(set, key)).padStart(11)).join(' ')}`);
  }
  log(`  banger spec line at ${secs(medianOf(bs, 'specMs'))}s after the CLI started`);
  // The guest boot is the same work on both sides and by far the noisiest part under TCG; the rest is what
  // banger itself adds or saves.
  const outside = (set: readonly Sample[]): number => median(set.map((s) => s.totalMs - s.bootMs));
  const ob = outside(bs);
  const oh = outside(hs);
  log(`  outside the guest boot (total - boot to ssh): banger ${secs(ob)}s, by-hand ${secs(oh)}s, difference ${((ob - oh) / 1000).toFixed(2)}s`);
  const ratio = mb / mh;
  log(`ratio banger/by-hand = ${ratio.toFixed(2)} (goal <= ${GOAL.toFixed(2)})${ratio <= GOAL ? '' : '  [above goal]'}`);
}

let interrupts = 0;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    interrupts++;
    if (interrupts === 1) {
      note(`${sig}: stopping; cleaning up (netns ${NETNS}, VMs and daemons of ${HOME})`);
      controller.abort();
    } else if (interrupts >= 3) {
      note(`${sig} again: exiting without finishing the clean-up; check ip netns list and pgrep -a qemu`);
      process.exit(130);
    } else {
      note('still cleaning up; signal twice more to exit at once');
    }
  });
}

let status = 0;
try {
  await main();
} catch (err) {
  if (err instanceof Aborted || signal.aborted) status = 130;
  else {
    note(`failed: ${err instanceof Error ? err.message : String(err)}`);
    status = 1;
  }
} finally {
  await cleanupAll();
}
const leftovers = ourQemuPids();
if (leftovers.length > 0) note(`WARNING: QEMU processes of ${HOME} still running: ${leftovers.join(' ')}`);
if (netnsCreated) note(`WARNING: netns ${NETNS} could not be deleted; remove it: ip netns del ${NETNS}`);
// A home this run made is removed with everything in it (image, kernel, decisions), unless something still runs.
if (!KEEP_HOME && leftovers.length === 0) fs.rmSync(HOME, { recursive: true, force: true });
else fs.rmSync(SHIM_DIR, { recursive: true, force: true });
process.exit(status);
