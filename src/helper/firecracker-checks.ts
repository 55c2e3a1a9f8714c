// What vmm.launchFirecracker accepts, checked before it touches anything: the host's own Firecracker and jailer
// (trusted-program.ts), a VM of the owner's, its files named plainly in banger's directories (owned-path.ts),
// sizes Firecracker takes, and a tap name. The tap's owner and bridge are HelperService's to check (ip).
import fs from 'node:fs';
import path from 'node:path';
import type { LaunchFirecrackerParams } from '../protocol/privileged-ops.ts';
import type { Owner } from '../system/as-owner.ts';
import { findExecutable } from '../system/executable.ts';
import { firecrackerLayout, JAIL_NAMES, type FirecrackerLayout } from '../system/firecracker-layout.ts';
import { TAP_PATTERN, VM_ID_PATTERN, int, matching } from './helper-checks.ts';
import { ownedPath } from './owned-path.ts';
import { refuse } from './refusal.ts';
import { trustedProgram } from './trusted-program.ts';
import { refuseUnknownVm } from './vmm-identity.ts';

/**
 * A program named plainly (a name on PATH, or an absolute path without `.` or `..`) whose file, after
 * symlinks, is named with `word` (firecracker, jailer) and only root can change: the jailer runs as root, and
 * Firecracker in banger's network namespace. Its real path.
 */
export function resolveFirecrackerProgram(value: unknown, word: string, what: string): string {
  const name = matching(value, /^[a-zA-Z0-9_./-]{1,200}$/, what);
  if (name.includes('/') && (!path.isAbsolute(name) || name.split('/').some((c) => c === '.' || c === '..'))) {
    refuse(`${what} ${name} must be a name on PATH or an absolute path without . or .. components`);
  }
  if (!path.basename(name).includes(word)) refuse(`${what} ${name} must be a program whose name contains "${word}"`);
  const real = fs.realpathSync(findExecutable(name));
  if (!path.basename(real).includes(word)) refuse(`${what} ${name} is ${real}, a program whose name does not contain "${word}"`);
  return trustedProgram(real, what);
}

export interface CheckedSpec {
  vmId: string;
  vmDir: string;
  vcpus: number;
  memoryMib: number;
  /** The owner's tap the VM will be given through the API, or null for none. */
  tap: string | null;
  /** Host path → the name it gets in the jail. */
  files: Array<{ host: string; name: string }>;
  serialLog: string;
  layout: FirecrackerLayout;
}

export interface SpecScope {
  owner: Owner;
  stateDir: string;
  cacheDir: string;
  /** The Firecracker binary's file name and the jail base (null without the jailer): where its files go. */
  execName: string;
  jailBase: string | null;
}

/**
 * The spec's values: a known VM of the owner's, sizes within Firecracker's limits, every file it reads the
 * owner's regular file in banger's directories, and every file written in the VM's directory absent, a regular
 * file or a socket (never a symlink, FIFO or device). Refuses (HELPER_REFUSED) naming the field otherwise.
 */
export function checkFirecrackerSpec(raw: LaunchFirecrackerParams['spec'], s: SpecScope): CheckedSpec {
  const owned = (value: unknown, roots: string[], what: string, mustExist: boolean): string => ownedPath(value, { roots, what, mustExist, owner: s.owner });
  const inputRoots = [s.stateDir, s.cacheDir];
  const vmId = matching(raw.vmId, VM_ID_PATTERN, 'vm id');
  refuseUnknownVm(s.stateDir, s.owner, vmId);
  const vmDir = path.join(s.stateDir, 'vms', vmId);
  const serialLog = owned(raw.serialLog, [s.stateDir], 'serial log', false);
  if (path.dirname(serialLog) !== vmDir) refuse(`serial log ${raw.serialLog} is not in the directory of VM ${vmId} (${vmDir})`);
  const layout = firecrackerLayout({ vmDir, vmId, execName: s.execName, jailBase: s.jailBase });
  // Written by name with the owner's rights: checked like the serial log. Under the jailer the sockets and the
  // pid file are in the jail, which is made afresh.
  const outputs = layout.chroot === null ? [layout.logFile, layout.metricsFile, layout.apiSocket, layout.vsockSocket, layout.pidFile] : [layout.logFile, layout.metricsFile];
  for (const file of outputs) owned(file, [s.stateDir], `Firecracker's ${path.basename(file)}`, false);
  if (raw.drives.length < 1 || raw.drives.length > 8) refuse('drives must be a list of 1 to 8');
  const ids = new Set<string>();
  const files = [
    { host: owned(raw.kernelPath, inputRoots, 'kernel', true), name: JAIL_NAMES.kernel },
    { host: owned(raw.initrdPath, inputRoots, 'initrd', true), name: JAIL_NAMES.initrd },
    ...raw.drives.map((d, i) => {
      // Firecracker's drive ids: letters, digits and underscores (parsed_request.rs checked_id).
      const id = matching(d.id, /^[a-z][a-z0-9_]{0,15}$/, `drive ${i} id`);
      if (ids.has(id)) refuse(`drive id ${id} is given twice`);
      ids.add(id);
      return { host: owned(d.path, inputRoots, `drive ${id}`, true), name: JAIL_NAMES.drive(id) };
    }),
    ...(raw.snapshot === null ? [] : snapshotFiles(raw.snapshot, layout, vmId, (value, what) => owned(value, [s.stateDir], what, true))),
  ];
  return {
    vmId, vmDir, layout, files, serialLog,
    vcpus: int(raw.vcpus, 1, 32, 'vcpus'),
    memoryMib: int(raw.memoryMib, 128, 1024 * 1024, 'memory'),
    tap: raw.tap === null ? null : matching(raw.tap, TAP_PATTERN, 'tap name'),
  };
}

/** A snapshot's files, each the owner's, and only where the driver keeps the VM's own (firecracker-layout.ts). */
function snapshotFiles(raw: { statePath: string; memPath: string }, layout: FirecrackerLayout, vmId: string, owned: (value: unknown, what: string) => string): Array<{ host: string; name: string }> {
  const files = [
    { host: owned(raw.statePath, 'snapshot state'), want: layout.snapshotState, name: JAIL_NAMES.snapshotState },
    { host: owned(raw.memPath, 'snapshot memory'), want: layout.snapshotMem, name: JAIL_NAMES.snapshotMem },
  ];
  for (const f of files) if (f.host !== f.want) refuse(`snapshot file ${f.host} is not where VM ${vmId}'s snapshot is kept (${f.want})`);
  return files.map(({ host, name }) => ({ host, name }));
}
