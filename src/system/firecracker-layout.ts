// Where a Firecracker VM's files are, seen from the host and from Firecracker: bangerd-root builds the jail from
// this, and the driver talks to the sockets and names the paths it finds there. Under the jailer Firecracker
// lives in <jail base>/<exec file name>/<jail id>/root (docs/jailer.md) and sees every file by the name it was
// linked in under; without the jailer it sees the host's paths and keeps its sockets in the VM's directory.
import path from 'node:path';

/** The jailer's default chroot base; bangerd-root makes the jails there, in a directory only root may change. */
export const FIRECRACKER_JAIL_BASE = '/srv/jailer';
/** The guest's vsock context id (3 is the lowest a guest may have; each VM has its own device, so all use it). */
export const FIRECRACKER_GUEST_CID = 3;

/** The jailer's --id and Firecracker's --id: letters, digits and hyphens, at most 64 (docs/jailer.md). */
export function firecrackerJailId(vmId: string): string {
  return `banger-${vmId}`;
}

export interface FirecrackerLayoutInput {
  vmDir: string;
  vmId: string;
  /** The Firecracker binary's file name: the jailer names the jail's directory and the copied binary after it. */
  execName: string;
  /** The jailer's chroot base, or null when Firecracker runs without the jailer. */
  jailBase: string | null;
}

export interface FirecrackerLayout {
  jailId: string;
  /** The jail's root on the host; null without the jailer. */
  chroot: string | null;
  apiSocket: string;
  vsockSocket: string;
  /** Written by the jailer (<chroot>/<exec name>.pid), or by bangerd-root without the jailer. */
  pidFile: string;
  /** Firecracker's own log and metrics, in the VM's directory (linked into the jail). */
  logFile: string;
  metricsFile: string;
  /** Where a snapshot of the VM is kept between runs (in the VM's directory). */
  snapshotState: string;
  snapshotMem: string;
  /** The name Firecracker is given for a file linked into the jail as `name`, whose host path is `hostPath`. */
  inside(name: string, hostPath: string): string;
  /** The host path of what Firecracker calls `name` in the jail (sockets and snapshots it writes itself). */
  hostOf(name: string): string;
}

/** Names inside the jail; each file the VM needs is linked in under one of these. */
export const JAIL_NAMES = {
  apiSocket: 'api.sock',
  vsock: 'vsock.sock',
  kernel: 'vmlinux',
  initrd: 'initrd.img',
  serial: 'serial.log',
  log: 'firecracker.log',
  metrics: 'metrics.json',
  snapshotState: 'snapshot.state',
  snapshotMem: 'snapshot.mem',
  drive: (id: string): string => `drive-${id}.img`,
} as const;

export function firecrackerLayout(i: FirecrackerLayoutInput): FirecrackerLayout {
  const jailId = firecrackerJailId(i.vmId);
  const chroot = i.jailBase === null ? null : path.join(i.jailBase, i.execName, jailId, 'root');
  const inVmDir = (name: string): string => path.join(i.vmDir, name);
  const hostOf = (name: string): string => (chroot ? path.join(chroot, name) : inVmDir(`fc-${name}`));
  return {
    jailId,
    chroot,
    apiSocket: hostOf(JAIL_NAMES.apiSocket),
    vsockSocket: hostOf(JAIL_NAMES.vsock),
    pidFile: chroot ? path.join(chroot, `${i.execName}.pid`) : inVmDir('firecracker.pid'),
    logFile: inVmDir('firecracker.log'),
    metricsFile: inVmDir('firecracker-metrics.json'),
    snapshotState: inVmDir('snapshot/vm.state'),
    snapshotMem: inVmDir('snapshot/vm.mem'),
    inside: (name, hostPath) => (chroot ? `/${name}` : hostPath),
    hostOf,
  };
}
