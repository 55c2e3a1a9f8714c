// banger system install [--owner USER] [--prefix DIR] [--bin-dir DIR]: this build as a systemd service. The
// build goes to PREFIX/versions/ (copied from a checkout, or the release this CLI already runs from), current
// points at it, bangerd-root.service and bangerd.service are written and checked with systemd-analyze verify
// (when it is installed), an install record keeps what was done, and systemd enables and starts both. Daemons
// started earlier by hand are stopped first (running VMs keep running; the new ones find them). A failure leaves
// nothing of the install behind.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import { stopDaemons } from '../../sdk/autostart.ts';
import { isoNow, pollUntil, systemClock } from '../../system/clock.ts';
import { configuredNetwork, helperArgs } from '../../system/helper-command.ts';
import { installOf, layoutAt, readInstallRecord, recordPath, RUNNING_ROOT, swapLink, type InstallRecord } from '../../system/install-layout.ts';
import { resolvePaths, type BangerPaths } from '../../system/paths.ts';
import { stageRelease } from '../../system/release-stage.ts';
import { isSocketAlive } from '../../system/socket-server.ts';
import { DAEMON_UNIT, daemonUnit, HELPER_UNIT, helperUnit, type UnitOwner } from '../../system/systemd-units.ts';
import { BUILD } from '../../version.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';
import { initName, systemctlAt, systemdIsInit, systemdVerify, type Systemctl } from '../systemctl.ts';

export interface SystemFlags {
  owner?: string;
  prefix?: string;
  binDir?: string;
  /** Hidden: where the units go (tests), /etc/systemd/system by default. */
  unitDir?: string;
  /** Hidden: the systemctl to run (tests put a stand-in here on hosts where systemd is not PID 1). */
  systemctl?: string;
  json?: boolean;
  purge?: boolean;
  force?: boolean;
}

export const DEFAULT_PREFIX = '/opt/banger';
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
const PROGRAMS = ['banger', 'bangerd', 'bangerd-root'] as const;

/** The user the daemon runs as, from the passwd and group databases (NSS included). */
export function lookupOwner(name: string): UnitOwner {
  const pw = spawnSync('getent', ['passwd', name], { encoding: 'utf8' });
  const fields = pw.stdout.trim().split(':');
  if (pw.status !== 0 || fields.length < 7) throw new BangerError('INVALID_ARGUMENT', `there is no user ${name}`, { hint: 'name an existing user: --owner USER' });
  const [, , uid, gid, , home] = fields;
  const gr = spawnSync('getent', ['group', gid!], { encoding: 'utf8' });
  return { name, uid: Number(uid), gid: Number(gid), group: gr.status === 0 ? gr.stdout.split(':')[0]! : gid!, home: home! };
}

/** BANGER_HOME and BANGER_NETNS as the install runs with them: the units carry them so the daemons agree. */
function bangerEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const key of ['BANGER_HOME', 'BANGER_NETNS'] as const) if (process.env[key]) env[key] = process.env[key]!;
  return env;
}

export function ownerPaths(owner: UnitOwner, environment: Record<string, string>): BangerPaths {
  return resolvePaths({ HOME: owner.home, ...environment }, owner.uid);
}

export function systemctlFor(flags: SystemFlags): Systemctl {
  if (!flags.systemctl && !systemdIsInit()) {
    throw new BangerError('MISSING_TOOL', `systemd is not running as init on this host (PID 1 is ${initName()}), so it cannot run banger's services`, {
      hint: 'run the daemons without systemd: banger daemon start',
    });
  }
  return systemctlAt(flags.systemctl);
}

export async function waitForDaemon(paths: BangerPaths, what: string): Promise<void> {
  const up = await pollUntil(async () => ((await isSocketAlive(paths.daemonSocket)) ? true : undefined), { clock: systemClock, timeoutMs: 30_000, intervalMs: 100 });
  if (!up) throw new BangerError('DAEMON_UNAVAILABLE', `bangerd did not answer on ${paths.daemonSocket} after ${what}`, { hint: `see: journalctl -u ${DAEMON_UNIT}` });
}

/** The release directory to install: this CLI's own when it runs from a release under `prefix`, else a copy. */
function releaseDir(prefix: string, undo: Array<() => void>): string {
  const running = installOf();
  if (running && running.prefix === path.resolve(prefix)) return fs.realpathSync(RUNNING_ROOT);
  const name = BUILD.builtAt && BUILD.commit && !BUILD.commit.endsWith('-dirty') && !fs.existsSync(path.join(RUNNING_ROOT, 'src'))
    ? BUILD.version
    : `${BUILD.version}-dev.${(BUILD.commit ?? 'unknown').replace(/[^A-Za-z0-9.-]/g, '')}`;
  const dest = path.join(prefix, 'versions', name);
  if (fs.existsSync(dest)) throw new BangerError('INVALID_ARGUMENT', `${dest} exists already`, { hint: `remove it, or install over it with banger update: rm -rf ${dest}` });
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const partial = `${dest}.partial-${process.pid}`;
  undo.push(() => fs.rmSync(partial, { recursive: true, force: true }));
  stageRelease(RUNNING_ROOT, partial, BUILD.version, { commit: BUILD.commit, builtAt: BUILD.builtAt ?? isoNow(systemClock), releaseManifest: BUILD.releaseManifest, releaseKey: BUILD.releaseKey });
  fs.renameSync(partial, dest);
  undo.push(() => fs.rmSync(dest, { recursive: true, force: true }));
  return dest;
}

/** `systemd-analyze verify` of the written units, when systemd-analyze is installed; its complaints fail the install. */
function verifyUnits(files: string[]): void {
  const complaints = systemdVerify(files);
  if (complaints !== null) {
    throw new BangerError('INTERNAL', `systemd-analyze verify found problems in the units banger wrote:\n${complaints}`, { hint: 'report this as a bug in banger; nothing was installed' });
  }
}

export async function systemInstall(ctx: CliContext, flags: SystemFlags): Promise<number> {
  if ((process.getuid?.() ?? 0) !== 0) throw new BangerError('INVALID_ARGUMENT', 'banger system install writes systemd units and needs root', { hint: `sudo banger system install --owner ${process.env.USER ?? 'USER'}` });
  const systemctl = systemctlFor(flags);
  const owner = lookupOwner(flags.owner ?? process.env.SUDO_USER ?? 'root');
  // A release installs where it lives; a checkout in /opt/banger unless told.
  const prefix = path.resolve(flags.prefix ?? installOf()?.prefix ?? DEFAULT_PREFIX);
  const unitDir = path.resolve(flags.unitDir ?? DEFAULT_UNIT_DIR);
  const binDir = path.resolve(flags.binDir ?? '/usr/local/bin');
  const existing = readInstallRecord(prefix);
  if (existing) {
    throw new BangerError('INVALID_ARGUMENT', `banger ${existing.version} is installed in ${prefix} already, for ${existing.owner.name}`, { hint: 'newer releases: banger update; to start afresh: banger system uninstall, then install' });
  }
  for (const unit of [HELPER_UNIT, DAEMON_UNIT]) {
    if (fs.existsSync(path.join(unitDir, unit))) {
      throw new BangerError('INVALID_ARGUMENT', `${path.join(unitDir, unit)} exists already: another banger is installed as a service here`, {
        hint: 'remove that install first (banger system uninstall --prefix ITS_PREFIX), or remove the unit files if they are leftovers',
      });
    }
  }
  const environment = bangerEnvironment();
  const paths = ownerPaths(owner, environment);
  const say = (line: string): void => ctx.output.err(`banger system install: ${line}`);
  const undo: Array<() => void> = [];
  try {
    // What this install creates goes with a failure, the prefix itself included when it made it.
    if (!fs.existsSync(prefix)) undo.push(() => fs.rmSync(prefix, { recursive: true, force: true }));
    const layout = layoutAt(prefix);
    const dest = releaseDir(prefix, undo);
    const oldCurrent = layout.current;
    swapLink(layout.currentLink, dest);
    undo.push(() => (oldCurrent ? swapLink(layout.currentLink, oldCurrent) : fs.rmSync(layout.currentLink, { force: true })));
    fs.mkdirSync(binDir, { recursive: true });
    for (const program of PROGRAMS) {
      const link = path.join(binDir, program);
      if (fs.existsSync(link) && !fs.lstatSync(link).isSymbolicLink()) throw new BangerError('INVALID_ARGUMENT', `${link} exists and is not a link banger made`, { hint: `move it aside, or install with --bin-dir DIR` });
      const before = fs.lstatSync(link, { throwIfNoEntry: false }) ? fs.readlinkSync(link) : null;
      const tmp = `${link}.banger-${process.pid}`;
      fs.symlinkSync(path.join(layout.currentLink, 'bin', program), tmp);
      fs.renameSync(tmp, link);
      undo.push(() => {
        fs.rmSync(link, { force: true });
        if (before !== null) fs.symlinkSync(before, link);
      });
    }
    const spec = { current: layout.currentLink, owner, helperArgs: helperArgs(paths, owner.uid, owner.gid, configuredNetwork(paths, { ...process.env, ...environment })), environment };
    const units = [[HELPER_UNIT, helperUnit(spec)], [DAEMON_UNIT, daemonUnit(spec)]] as const;
    fs.mkdirSync(unitDir, { recursive: true });
    for (const [name, text] of units) {
      fs.writeFileSync(path.join(unitDir, name), text, { mode: 0o644 });
      undo.push(() => fs.rmSync(path.join(unitDir, name), { force: true }));
    }
    verifyUnits(units.map(([name]) => path.join(unitDir, name)));
    const record: InstallRecord = {
      version: BUILD.version, commit: BUILD.commit, builtAt: BUILD.builtAt, owner: { name: owner.name, uid: owner.uid, gid: owner.gid },
      unitDir, units: units.map(([name]) => name), binDir, installedAt: isoNow(systemClock), environment,
    };
    fs.writeFileSync(recordPath(prefix), `${JSON.stringify(record, null, 2)}\n`);
    undo.push(() => fs.rmSync(recordPath(prefix), { force: true }));
    // Daemons started by hand give way to the services (their VMs keep running and are found again).
    const stopped = await stopDaemons(paths);
    if (stopped.length > 0) say(`stopped ${stopped.join(' and ')} started by hand; systemd runs them from now on`);
    systemctl.run(['daemon-reload']);
    undo.push(() => void systemctl.run(['disable', '--now', HELPER_UNIT, DAEMON_UNIT]));
    systemctl.run(['enable', '--now', HELPER_UNIT, DAEMON_UNIT]);
    await waitForDaemon(paths, 'systemctl enable --now');
    if (flags.json) printJson(ctx.output, { prefix, ...record });
    else {
      ctx.output.out([
        `installed banger ${BUILD.version} in ${dest} for ${owner.name}`,
        `units: ${units.map(([name]) => path.join(unitDir, name)).join(', ')} (enabled, running)`,
        `commands: ${PROGRAMS.map((p) => path.join(binDir, p)).join(', ')}`,
        'see it: banger system status; check it: banger doctor',
      ].join('\n'));
    }
    return 0;
  } catch (err) {
    for (const step of undo.reverse()) {
      try {
        step();
      } catch (undoErr) {
        say(`while undoing the install: ${messageOf(undoErr)}`);
      }
    }
    throw err;
  }
}
