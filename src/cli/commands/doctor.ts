// banger doctor [-v] [--json] [--fix]: audits the host, the install and what bangerd runs. Healthy: one line.
// Otherwise only the warn and fail rows, each with the command that fixes it; -v prints every check. Exits 1
// when any check fails. --fix runs the fixes that are safe unattended (doctor-fix.ts), then checks again.
// It never starts a daemon: with bangerd down, what only bangerd knows is skipped and says so.
import type { DoctorCheck, DoctorReport } from '../../protocol/doctor.ts';
import { messageOf } from '../../protocol/errors.ts';
import type { VersionInfo } from '../../protocol/methods.ts';
import { connect } from '../../sdk/client.ts';
import { loadConfig } from '../../system/config.ts';
import { resolvePaths, type BangerPaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { configChecks, firecrackerCheck, kvmCheck, pathChecks, platformCheck, qemuCheck, realHostProbe, storeCheck, toolChecks, unitChecks, versionChecks, type HostProbe } from '../doctor-host.ts';
import { serviceInstall } from '../service-install.ts';
import { systemctlAt, systemdIsInit } from '../systemctl.ts';
import type { InstallRecord } from '../../system/install-layout.ts';
import { applySafeFixes, type FixRunner } from '../doctor-fix.ts';
import { printJson } from '../output.ts';

export interface DoctorFlags {
  verbose?: boolean;
  json?: boolean;
  fix?: boolean;
}

export interface DoctorDeps {
  probe?: HostProbe;
  paths?: BangerPaths;
  /** bangerd's version and checks, or null when it is not running; asked over its socket when not given. */
  daemon?: () => Promise<{ version: VersionInfo; checks: DoctorCheck[] } | null>;
  fixer?: FixRunner;
  /** The install record when installed as services; the running install's when not given. */
  serviceRecord?: InstallRecord | null;
}

async function askDaemon(paths: BangerPaths, probe: HostProbe): Promise<{ version: VersionInfo; checks: DoctorCheck[] } | null> {
  if (!(await probe.socketAlive(paths.daemonSocket))) return null;
  const client = await connect({ autoStart: false });
  try {
    return { version: await client.version(), checks: await client.doctor() };
  } finally {
    client.close();
  }
}

/** Every check: the host's, then bangerd's (or one row saying they were skipped). */
export async function runChecks(deps: DoctorDeps = {}): Promise<DoctorReport> {
  const probe = deps.probe ?? realHostProbe;
  const paths = deps.paths ?? resolvePaths();
  let daemon: Awaited<ReturnType<NonNullable<DoctorDeps['daemon']>>> = null;
  let daemonRow: DoctorCheck;
  try {
    daemon = await (deps.daemon ?? (() => askDaemon(paths, probe)))();
    daemonRow = daemon
      ? { id: 'daemon', status: 'ok', summary: `bangerd is running (pid ${daemon.version.pid})` }
      : { id: 'daemon', status: 'ok', summary: 'bangerd is not running (it starts on first use); its checks were skipped: banger daemon start, then banger doctor' };
  } catch (err) {
    daemonRow = { id: 'daemon', status: 'fail', summary: `bangerd does not answer: ${messageOf(err)}`, fix: 'banger daemon stop && banger daemon start' };
  }
  let qemu = 'qemu-system-x86_64';
  let vmm: Parameters<typeof firecrackerCheck>[1] = { driver: 'auto', firecrackerBin: 'firecracker', jailerBin: 'jailer' };
  try {
    const config = loadConfig(paths.configFile);
    vmm = config.vmm;
    qemu = config.vmm.qemu;
  } catch {
    // configChecks reports it.
  }
  const checks = [
    platformCheck(probe),
    ...versionChecks(daemon?.version ?? null),
    ...toolChecks(probe),
    kvmCheck(probe),
    qemuCheck(probe, qemu),
    firecrackerCheck(probe, vmm),
    ...(await pathChecks(probe, paths)),
    ...configChecks(paths),
    ...storeCheck(probe, paths),
    ...unitChecks(deps.serviceRecord === undefined ? serviceInstall() : deps.serviceRecord, undefined, systemdIsInit() ? (u) => systemctlAt().show(u).active : undefined),
    daemonRow,
    ...(daemon?.checks ?? []),
  ];
  return { healthy: !checks.some((c) => c.status !== 'ok'), checks };
}

function render(report: DoctorReport, verbose: boolean): string {
  const accel = report.checks.find((c) => c.id === 'vmm.accel');
  if (report.healthy && !verbose) {
    // The accelerator is the one decision worth a word when all is well: "qemu/tcg (KVM did not boot a guest ...)".
    const decided = /^accelerator: (qemu|firecracker)\//.test(accel?.summary ?? '') ? accel!.summary.replace(/^accelerator: /, '').replace(/; decided afresh .*$/, '') : null;
    return `banger doctor: healthy (${report.checks.length} checks${decided ? `; ${decided}` : ''})`;
  }
  const shown = verbose ? report.checks : report.checks.filter((c) => c.status !== 'ok');
  const lines = shown.map((c) => {
    const head = `${c.status.toUpperCase().padEnd(4)}  ${c.id}: ${c.summary}`;
    return c.fix && c.status !== 'ok' ? `${head}\n      fix: ${c.fix}${c.safeFix ? '   (banger doctor --fix runs it)' : ''}` : head;
  });
  const fails = report.checks.filter((c) => c.status === 'fail').length;
  const warns = report.checks.filter((c) => c.status === 'warn').length;
  lines.push(report.healthy ? `healthy (${report.checks.length} checks)` : `${fails} failed, ${warns} warning(s), ${report.checks.length - fails - warns} ok`);
  return lines.join('\n');
}

export async function doctor(ctx: CliContext, flags: DoctorFlags, deps: DoctorDeps = {}): Promise<number> {
  let report = await runChecks(deps);
  if (flags.fix) {
    const fixable = report.checks.filter((c) => c.status !== 'ok' && c.safeFix);
    if (fixable.length > 0) {
      const done = await applySafeFixes(fixable, { output: ctx.output, runner: deps.fixer, uid: (deps.probe ?? realHostProbe).uid });
      for (const line of done) ctx.output.err(`banger doctor: ${line}`);
      report = await runChecks(deps);
    } else if (!report.healthy) ctx.output.err('banger doctor: nothing here can be fixed unattended; the fix lines say what to run');
  }
  if (flags.json) printJson(ctx.output, report);
  else ctx.output.out(render(report, flags.verbose === true));
  return report.checks.some((c) => c.status === 'fail') ? 1 : 0;
}
