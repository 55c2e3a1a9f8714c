// The CLI's half of `banger doctor`: what it can see of the host and the install without bangerd. The
// architecture, the programs banger runs (by Debian package), KVM, QEMU's version, banger's directories and
// sockets, the config and where each VM default comes from, the store (through `bangerd --check-store`, which
// owns the schema), and which builds of the CLI, the install and the daemon are in play.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { CheckStatus, DoctorCheck } from '../protocol/doctor.ts';
import { messageOf } from '../protocol/errors.ts';
import type { VersionInfo } from '../protocol/methods.ts';
import { FIRECRACKER_MIN_VERSION, FIRECRACKER_TESTED_VERSION, QEMU_MIN_VERSION, QEMU_TESTED_VERSION, parseFirecrackerVersion, parseQemuVersion } from '../protocol/vmm-versions.ts';
import type { BangerConfig } from '../system/config.ts';
import { isOlderVersion } from '../protocol/versions.ts';
import { loadConfig, vmDefaultsWithSources } from '../system/config.ts';
import { BIN_DIR } from '../system/helper-command.ts';
import { HOST_TOOLS, hostToolPresent } from '../system/host-tools.ts';
import { versionLineOf } from '../system/executable.ts';
import { KVM_DEVICE, kvmDeviceUsable } from '../system/kvm-device.ts';
import { systemdVerify } from './systemctl.ts';
import { installOf, releaseInfo, type InstallRecord } from '../system/install-layout.ts';
import { pathsProblem, type BangerPaths } from '../system/paths.ts';
import { BUILD, type BuildInfo } from '../version.ts';

/** What the host checks read, so tests can stand in for the machine. */
export interface HostProbe {
  platform: string;
  arch: string;
  /** Whether a program or file is here (HOST_TOOLS entries). */
  toolPresent: (tool: (typeof HOST_TOOLS)[number]) => boolean;
  /** `qemu --version`'s first line, or null when it does not run. */
  qemuVersion: (qemu: string) => string | null;
  /** `firecracker --version`'s first line, or null when it does not run (absent: nothing to ask). */
  firecrackerVersion?: (firecracker: string) => string | null;
  kvm: () => 'rw' | 'no-access' | 'missing';
  /** `bangerd --check-store`'s JSON. */
  checkStore: () => { migrations: { status: number; message: string }; integrity: string | null };
  /** Whether something answers on a socket. */
  socketAlive: (socket: string) => Promise<boolean>;
  uid: number;
}

export const realHostProbe: HostProbe = {
  platform: process.platform,
  arch: process.arch,
  toolPresent: (tool) => hostToolPresent(tool),
  qemuVersion: (qemu) => versionLineOf(qemu, 10_000),
  firecrackerVersion: (firecracker) => versionLineOf(firecracker, 10_000),
  kvm: () => {
    if (!fs.existsSync(KVM_DEVICE)) return 'missing';
    return kvmDeviceUsable(KVM_DEVICE) ? 'rw' : 'no-access';
  },
  checkStore: () => {
    const r = spawnSync(path.join(BIN_DIR, 'bangerd'), ['--check-store'], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`bangerd --check-store failed (exit ${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
    return JSON.parse(r.stdout) as ReturnType<HostProbe['checkStore']>;
  },
  socketAlive: async (socket) => (await import('../system/socket-server.ts')).isSocketAlive(socket),
  uid: process.getuid?.() ?? 0,
};

const row = (id: string, status: CheckStatus, summary: string, extra: Partial<DoctorCheck> = {}): DoctorCheck => ({ id, status, summary, ...extra });

export function platformCheck(probe: HostProbe): DoctorCheck {
  if (probe.platform === 'linux' && probe.arch === 'x64') return row('host.arch', 'ok', 'linux on x86_64');
  return row('host.arch', 'fail', `${probe.platform} on ${probe.arch}: banger runs x86_64 guests on x86_64 Linux hosts only`);
}

/** One row per Debian package with a missing program, naming the programs and what banger needs them for. */
export function toolChecks(probe: HostProbe): DoctorCheck[] {
  const missing = new Map<string, { tools: string[]; optional: boolean; usedFor: string[] }>();
  for (const tool of HOST_TOOLS) {
    if (probe.toolPresent(tool)) continue;
    const entry = missing.get(tool.pkg) ?? { tools: [], optional: true, usedFor: [] };
    entry.tools.push(path.basename(tool.name));
    entry.optional &&= tool.optional === true;
    entry.usedFor.push(tool.usedFor);
    missing.set(tool.pkg, entry);
  }
  if (missing.size === 0) return [row('tools', 'ok', `all ${HOST_TOOLS.length} host programs banger runs are installed`)];
  return [...missing].map(([pkg, m]) =>
    row(`tools.${pkg}`, m.optional ? 'warn' : 'fail', `${m.tools.join(', ')} ${m.tools.length > 1 ? 'are' : 'is'} missing (${m.usedFor.join('; ')}): Debian package ${pkg}`, {
      fix: `apt-get install -y --no-install-recommends ${pkg}`,
      safeFix: { kind: 'apt-install', packages: [pkg] },
    }));
}

export function kvmCheck(probe: HostProbe): DoctorCheck {
  const state = probe.kvm();
  if (state === 'rw') return row('host.kvm', 'ok', '/dev/kvm is usable (whether it runs a guest is the accelerator decision)');
  if (state === 'missing') return row('host.kvm', 'ok', 'no /dev/kvm: guests run under QEMU TCG (slower; enable virtualization, or nested virtualization in a VM, for KVM)');
  return row('host.kvm', 'warn', '/dev/kvm exists but this user cannot open it: guests run under TCG', { fix: `usermod -aG kvm ${process.env.USER ?? '$USER'} (then log in again)` });
}

export function qemuCheck(probe: HostProbe, qemu: string): DoctorCheck {
  const line = probe.qemuVersion(qemu);
  if (line === null) return row('vmm.qemu', 'fail', `${qemu} does not run`, { fix: 'apt-get install -y qemu-system-x86, or set [vmm] qemu in config.toml' });
  const version = parseQemuVersion(line);
  if (version === null) return row('vmm.qemu', 'warn', `${qemu}: cannot read its version from "${line}"`);
  if (isOlderVersion(version, QEMU_MIN_VERSION)) {
    return row('vmm.qemu', 'fail', `QEMU ${version} is older than ${QEMU_MIN_VERSION}, the oldest banger supports`, { fix: 'install QEMU 7.0 or newer (Debian 12 ships 7.2)' });
  }
  // Tested per release series: 7.2.22 is 7.2.
  const tested = isOlderVersion(QEMU_TESTED_VERSION, version.split('.').slice(0, 2).join('.')) ? `, newer than ${QEMU_TESTED_VERSION}, the one tested` : '';
  return row('vmm.qemu', 'ok', `QEMU ${version} (supported from ${QEMU_MIN_VERSION}${tested})`);
}

/**
 * Firecracker's version against the supported range, when it is configured or present. "Tested" is honest about
 * what it means: banger's requests follow that version's API description and were checked against a fake.
 */
export function firecrackerCheck(probe: HostProbe, vmm: Pick<BangerConfig['vmm'], 'driver' | 'firecrackerBin' | 'jailerBin'>): DoctorCheck {
  if (vmm.driver === 'qemu') return row('vmm.firecracker', 'ok', 'Firecracker: not used (vmm.driver = "qemu")');
  const line = probe.firecrackerVersion?.(vmm.firecrackerBin) ?? null;
  if (line === null) {
    if (vmm.driver === 'auto') return row('vmm.firecracker', 'ok', `Firecracker: ${vmm.firecrackerBin} does not run here, so new VMs use QEMU (vmm.driver = "auto")`);
    return row('vmm.firecracker', 'fail', `vmm.driver = "firecracker" but ${vmm.firecrackerBin} does not run`, {
      fix: 'install Firecracker (its release binaries: firecracker and jailer) and set vmm.firecracker_bin, or set vmm.driver = "auto"',
    });
  }
  const version = parseFirecrackerVersion(line);
  if (version === null) return row('vmm.firecracker', 'warn', `${vmm.firecrackerBin}: cannot read its version from "${line}"`);
  if (isOlderVersion(version, FIRECRACKER_MIN_VERSION)) {
    return row('vmm.firecracker', 'fail', `Firecracker ${version} is older than ${FIRECRACKER_MIN_VERSION}, the oldest banger supports`, { fix: `install Firecracker ${FIRECRACKER_TESTED_VERSION}` });
  }
  const newer = isOlderVersion(FIRECRACKER_TESTED_VERSION, version) ? `, newer than ${FIRECRACKER_TESTED_VERSION}` : '';
  const summary = `Firecracker ${version} runs (supported from ${FIRECRACKER_MIN_VERSION}${newer}; banger's requests follow the API of ${FIRECRACKER_TESTED_VERSION}, checked against a fake, never a real Firecracker)`;
  if (vmm.jailerBin === null) {
    return row('vmm.firecracker', 'warn', `${summary}; without the jailer (vmm.jailer_bin = ""): no chroot, cgroup limits or pid namespace`, {
      fix: 'set vmm.jailer_bin to the jailer of the same release, unless this is a development host',
    });
  }
  return row('vmm.firecracker', 'ok', `${summary}; under the jailer ${vmm.jailerBin}`);
}

/** The directories banger keeps, and stale sockets: a socket file nothing answers on is a crashed daemon's. */
export async function pathChecks(probe: HostProbe, paths: BangerPaths): Promise<DoctorCheck[]> {
  const rows: DoctorCheck[] = [];
  const problem = pathsProblem(paths);
  if (problem) rows.push(row('paths', 'fail', problem, { fix: 'set BANGER_HOME to a short path without spaces, e.g. BANGER_HOME=/var/lib/banger' }));
  const dirs = [paths.stateDir, paths.cacheDir, paths.runDir, paths.logDir];
  const notDirs = dirs.filter((d) => fs.existsSync(d) && !fs.statSync(d).isDirectory());
  for (const d of notDirs) rows.push(row('paths', 'fail', `${d} is not a directory`, { fix: `move ${d} aside (mv ${d} ${d}.bak)` }));
  // Never used: each is made on first use. Used (the store exists), a missing one is made by --fix.
  const missing = dirs.filter((d) => !fs.existsSync(d));
  if (fs.existsSync(paths.db) && missing.length > 0) {
    rows.push(row('paths', 'warn', `missing: ${missing.join(', ')}`, { fix: `mkdir -p ${missing.join(' ')}`, safeFix: { kind: 'mkdir', paths: missing } }));
  }
  for (const [name, socket] of [['bangerd', paths.daemonSocket], ['bangerd tunnel', paths.tunnelSocket], ['bangerd-root', paths.helperSocket]] as const) {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(socket);
    } catch {
      continue;
    }
    if (!st.isSocket()) {
      rows.push(row('sockets', 'fail', `${socket} is not a socket`, { fix: `move it aside: mv ${socket} ${socket}.bak` }));
    } else if (!(await probe.socketAlive(socket))) {
      rows.push(row('sockets', 'warn', `${socket}: stale ${name} socket (nothing answers; left by a daemon that died)`, { fix: `rm ${socket}`, safeFix: { kind: 'remove-stale-socket', path: socket } }));
    } else if ((st.mode & 0o077) !== 0) {
      rows.push(row('sockets', 'fail', `${socket} is reachable by other users (mode ${(st.mode & 0o777).toString(8)})`, { fix: `chmod 600 ${socket}` }));
    } else if (st.uid !== probe.uid) {
      rows.push(row('sockets', 'warn', `${socket} belongs to uid ${st.uid}, not to this user (${probe.uid})`, { fix: 'run banger as the user that started bangerd, or: banger daemon stop, then start it as this user' }));
    }
  }
  if (!rows.some((r) => r.id === 'sockets')) rows.push(row('sockets', 'ok', `sockets in ${paths.runDir}: owner-only, none stale`));
  if (!rows.some((r) => r.id === 'paths')) rows.push(row('paths', 'ok', `state ${paths.stateDir}, cache ${paths.cacheDir}`));
  return rows;
}

/** The config loads, and where each VM default comes from (config, host-derived or built-in). */
export function configChecks(paths: BangerPaths): DoctorCheck[] {
  try {
    loadConfig(paths.configFile);
    const d = vmDefaultsWithSources(paths.configFile);
    const shown: Array<[string, string, string]> = [
      ['vcpus', String(d.vcpus.value), d.vcpus.why], ['memory', `${d.memoryMib.value} MiB`, d.memoryMib.why],
      ['disk', `${d.diskGib.value} GiB`, d.diskGib.why], ['image', d.image.value, d.image.why],
    ];
    return [
      row('config', 'ok', fs.existsSync(paths.configFile) ? `${paths.configFile} loads` : `no ${paths.configFile}: every setting is its default`),
      ...shown.map(([key, value, why]) => row(`vm_defaults.${key}`, 'ok', `[vm_defaults] ${key} = ${value} (${why})`)),
    ];
  } catch (err) {
    return [row('config', 'fail', `${paths.configFile} does not load: ${messageOf(err)}`, { fix: `edit ${paths.configFile} (bangerd refuses to start with it)` })];
  }
}

export function storeCheck(probe: HostProbe, paths: BangerPaths): DoctorCheck[] {
  let store: ReturnType<HostProbe['checkStore']>;
  try {
    store = probe.checkStore();
  } catch (err) {
    return [row('store', 'fail', messageOf(err), { fix: 'reinstall banger (bash scripts/setup.sh in a checkout)' })];
  }
  const rows: DoctorCheck[] = [];
  if (store.migrations.status === 2) rows.push(row('store.schema', 'fail', store.migrations.message, { fix: 'run the newer banger that wrote it (banger update), or move the store aside to start afresh' }));
  else rows.push(row('store.schema', 'ok', store.migrations.message));
  if (store.integrity === null) rows.push(row('store.integrity', 'ok', `no store yet at ${paths.db} (made on first use)`));
  else if (store.integrity === 'ok') rows.push(row('store.integrity', 'ok', `${paths.db}: integrity check ok`));
  else rows.push(row('store.integrity', 'fail', `${paths.db} is damaged: ${store.integrity}`, { fix: `banger daemon stop; cp ${paths.db} ${paths.db}.bak; then sqlite3 ${paths.db}.bak .recover | sqlite3 ${paths.db}.new and move it in place` }));
  return rows;
}

/**
 * The systemd units of an install made with `banger system install`: present, accepted by systemd-analyze verify,
 * and (when systemd is init here) active. Nothing to say for a banger not installed as services.
 */
export function unitChecks(record: InstallRecord | null, verify: (files: string[]) => string | null = systemdVerify, state?: (unit: string) => string): DoctorCheck[] {
  if (!record) return [];
  const files = record.units.map((u) => path.join(record.unitDir, u));
  const missing = files.filter((f) => !fs.existsSync(f));
  if (missing.length > 0) return [row('units', 'fail', `unit files missing: ${missing.join(', ')}`, { fix: 'banger system uninstall, then banger system install' })];
  const complaints = verify(files);
  if (complaints) return [row('units', 'fail', `systemd-analyze verify: ${complaints.split('\n').slice(0, 3).join('; ')}`, { fix: 'banger system uninstall, then banger system install' })];
  const inactive = state ? record.units.filter((u) => state(u) !== 'active') : [];
  if (inactive.length > 0) return [row('units', 'fail', `${inactive.join(', ')} not active`, { fix: `systemctl start ${inactive.join(' ')}; see journalctl -u ${inactive[0]}` })];
  return [row('units', 'ok', `${record.units.join(', ')} in ${record.unitDir}: verified${state ? ', active' : ' (systemd is not init here: not started by it)'}`)];
}

/**
 * Which builds are in play: this CLI, the installed release (`current`) when this CLI is one, and the running
 * bangerd. A development build (run from src/) is never called drift: it has no commit to compare.
 */
export function versionChecks(daemon: VersionInfo | null, build: Pick<BuildInfo, 'version' | 'commit' | 'builtAt'> = BUILD, install = installOf()): DoctorCheck[] {
  const rows: DoctorCheck[] = [];
  const label = (b: { version: string; commit: string | null }): string => `${b.version}${b.commit ? ` (${b.commit.slice(0, 12)})` : ''}`;
  const dev = build.builtAt === null;
  if (install) {
    const current = install.current ? releaseInfo(install.current) : null;
    if (!current) rows.push(row('versions.install', 'fail', `${install.currentLink} does not point at a release`, { fix: `ln -sfn versions/${build.version} ${install.currentLink}` }));
    else if (current.version !== build.version || current.commit !== build.commit) {
      rows.push(row('versions.install', 'warn', `this CLI is ${label(build)}, the installed release is ${label(current)}`, { fix: `use ${path.join(install.currentLink, 'bin', 'banger')}` }));
    } else rows.push(row('versions.install', 'ok', `installed release ${label(current)} in ${install.prefix}`));
  }
  if (daemon && !dev && daemon.builtAt !== null && (daemon.version !== build.version || daemon.commit !== build.commit)) {
    rows.push(row('versions.daemon', 'warn', `bangerd (pid ${daemon.pid}) runs ${label(daemon)}, this CLI is ${label(build)}`, { fix: 'banger daemon stop && banger daemon start' }));
  } else {
    rows.push(row('versions', 'ok', `banger ${dev ? `${build.version} (development build)` : label(build)}${daemon ? `, bangerd pid ${daemon.pid}` : ''}`));
  }
  return rows;
}
