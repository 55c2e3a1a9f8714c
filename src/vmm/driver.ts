// The seam between banger's VM lifecycle and a particular VMM (QEMU today; Firecracker behind the same shape).
import path from 'node:path';
import type { KernelInfo } from '../protocol/methods.ts';
import type { AgentEndpoint } from './agent-dial.ts';

export type Accel = 'kvm' | 'tcg';

export interface AccelChoice {
  accel: Accel;
  /** Why, for the spec line and logs: "KVM works", "no /dev/kvm", "KVM did not boot a guest within 20s". */
  reason: string;
  /** The VMM that will run the VM, when a driver chooses between several (VmmRouter); the driver's name otherwise. */
  vmm?: string;
}

export interface DiskOptions {
  baseImage: string;
  workDiskGib: number;
  /** A directory whose contents the work disk (the guest's /root) is made with, owners and modes kept. */
  workDiskSeed?: string;
  signal: AbortSignal;
}

export interface VmFiles {
  dir: string;
  rootDisk: string;
  workDisk: string;
  initrd: string;
  serialLog: string;
  qmpSocket: string;
  /** The guest agent's virtio-serial port, served by QEMU. */
  agentSocket: string;
  pidFile: string;
}

/** The file layout of one VM's directory. */
export function vmFilesIn(dir: string): VmFiles {
  return {
    dir,
    rootDisk: path.join(dir, 'root.qcow2'),
    workDisk: path.join(dir, 'work.ext4'),
    initrd: path.join(dir, 'initrd.img'),
    serialLog: path.join(dir, 'serial.log'),
    qmpSocket: path.join(dir, 'qmp.sock'),
    agentSocket: path.join(dir, 'agent.sock'),
    pidFile: path.join(dir, 'qemu.pid'),
  };
}

export interface BootSpec {
  vmId: string;
  vcpus: number;
  memoryMib: number;
  kernel: KernelInfo;
  files: VmFiles;
  net: { tap: string; mac: string };
  netns: string | null;
  accel: Accel;
}

export interface VmmDriver {
  readonly name: string;
  /** The accelerator decision when it needs no waiting (forced by config, no KVM, or remembered); null when it must be probed. */
  knownAccel(kernel: KernelInfo): AccelChoice | null;
  /**
   * KVM when a guest really runs with it here, else TCG: decided at most once per host boot for a kernel and VMM
   * binary, whatever the outcome, and shared by concurrent callers. `fresh` decides again.
   */
  selectAccel(kernel: KernelInfo, options: { signal: AbortSignal; fresh?: boolean }): Promise<AccelChoice>;
  /** Creates the VM's disks: a copy-on-write layer over the image and a work disk, empty or made with `workDiskSeed`. */
  prepareDisks(files: VmFiles, options: DiskOptions): Promise<void>;
  /** Starts the VMM; resolves once the VMM process runs, not when the guest has booted. */
  boot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }>;
  /** Stops the VMM quickly (the caller syncs the guest first). */
  stop(vm: { vmId: string; pid: number | null; files: VmFiles }): Promise<void>;
  /**
   * Sends `signal` to the VMM (no guest sync, no clean quit) and waits briefly for it to exit; fails with
   * VMM_FAILED if it is still there. Nothing happens when it is not running.
   */
  terminate(vm: { vmId: string; pid: number | null }, signal: NodeJS.Signals): Promise<void>;
  /** Whether `pid` is still this VM's VMM (guards against pid reuse after a restart). */
  isAlive(vmId: string, pid: number | null): boolean;
  /**
   * The VM's running VMM found through the pid file it (or its jailer) wrote, when its pid was never recorded (a
   * launch that did not finish); null unless that process is this VM's VMM.
   */
  findVmm(vmId: string, files: VmFiles): number | null;
  /** Where the host reaches the guest agent of a VM this driver booted. */
  agentEndpoint(files: VmFiles): AgentEndpoint;
}

/** What a driver offers for snapshots (Firecracker): pause, resume, snapshot a paused VM, start from it. */
export interface VmmSnapshots {
  pause(vm: { files: VmFiles }): Promise<void>;
  resume(vm: { files: VmFiles }): Promise<void>;
  /** A full snapshot of a paused VM, kept in its directory; the VMM refuses one of a running VM. */
  createSnapshot(vm: { files: VmFiles }): Promise<{ statePath: string; memPath: string }>;
  /** Starts the VMM from the VM's snapshot instead of booting it; resolves with the pid once it runs. */
  bootFromSnapshot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }>;
}
