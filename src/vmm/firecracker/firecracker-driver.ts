// The Firecracker driver: bangerd-root starts Firecracker (under the jailer, or alone on development hosts),
// then the VM is configured and started through Firecracker's API socket (fc-requests.ts). Storage costs the
// same whatever the image's size: the image is a read-only drive shared by every VM made from it, and each VM
// gets a sparse writable disk that banger's /init lays over it as an overlay (banger.overlay=1), plus its work
// disk. Firecracker needs KVM (it has no emulation), and boots an ELF vmlinux, not a bzImage.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { KernelInfo } from '../../protocol/methods.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import { pollUntil, type Clock } from '../../system/clock.ts';
import { findExecutable } from '../../system/executable.ts';
import { FIRECRACKER_GUEST_CID, FIRECRACKER_JAIL_BASE, firecrackerJailId, firecrackerLayout, JAIL_NAMES, type FirecrackerLayout } from '../../system/firecracker-layout.ts';
import { isFirecrackerProcess } from '../../system/firecracker-process.ts';
import { AGENT_VSOCK_PORT, OVERLAY_CMDLINE_FLAG } from '../../system/guest-contract.ts';
import { readPidFile } from '../../system/pid-file.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { kvmDeviceUsable } from '../../system/kvm-device.ts';
import { guestCmdline } from '../../system/qemu-argv.ts';
import type { AgentEndpoint } from '../agent-dial.ts';
import type { AccelChoice, BootSpec, DiskOptions, VmFiles, VmmDriver, VmmSnapshots } from '../driver.ts';
import { FirecrackerApi } from './fc-api.ts';
import { requests, type FirecrackerRequest } from './fc-requests.ts';
import { launchDisksOf, makeOverlayDisks, overlayDisksOf } from './overlay-disks.ts';

export interface FirecrackerDriverOptions {
  ops: PrivilegedOps;
  runner: ProcessRunner;
  clock: Clock;
  /** The Firecracker binary (vmm.firecracker_bin). */
  firecracker: string;
  /** The jailer binary (vmm.jailer_bin); null runs Firecracker without it. */
  jailer: string | null;
  /** Must be the helper's (both default to FIRECRACKER_JAIL_BASE). */
  jailBase?: string;
  kvmDevice?: string;
  /** The /proc to read processes from. */
  procRoot?: string;
  /** An ELF vmlinux for `kernel` (Firecracker boots no bzImage); by default the kernel itself, which must be one. */
  elfKernel?: (kernel: KernelInfo, signal: AbortSignal) => Promise<string>;
  log?: (message: string) => void;
}

/** The network interface's id in Firecracker's API (letters, digits, underscores). */
const IFACE_ID = 'eth0';

export class FirecrackerDriver implements VmmDriver, VmmSnapshots {
  readonly name = 'firecracker';
  private readonly options: FirecrackerDriverOptions;

  constructor(options: FirecrackerDriverOptions) {
    this.options = options;
  }

  /** The binary's file name after symlinks, as the jailer names the jail and the process after it. */
  private execName(): string {
    try {
      return path.basename(fs.realpathSync(findExecutable(this.options.firecracker)));
    } catch {
      return path.basename(this.options.firecracker);
    }
  }

  layoutOf(files: VmFiles): FirecrackerLayout {
    // A VM's directory is named after its id (vmFilesIn(vmsDir/id)).
    return firecrackerLayout({
      vmDir: files.dir, vmId: path.basename(files.dir), execName: this.execName(),
      jailBase: this.options.jailer === null ? null : (this.options.jailBase ?? FIRECRACKER_JAIL_BASE),
    });
  }

  private kvmChoice(): AccelChoice {
    const device = this.options.kvmDevice ?? '/dev/kvm';
    if (!kvmDeviceUsable(device)) {
      throw new BangerError('VMM_FAILED', `Firecracker needs KVM, and ${device} is not usable`, {
        hint: 'use QEMU instead: [vmm] driver = "qemu" (or "auto") in config.toml, or fix the permissions of /dev/kvm',
      });
    }
    return { accel: 'kvm', reason: `Firecracker runs guests only with KVM (${device})${this.options.jailer === null ? '; without the jailer (jailer_bin = "")' : ''}` };
  }

  knownAccel(_kernel: KernelInfo): AccelChoice | null {
    return this.kvmChoice();
  }

  async selectAccel(_kernel: KernelInfo, _options: { signal: AbortSignal; fresh?: boolean }): Promise<AccelChoice> {
    return this.kvmChoice();
  }

  prepareDisks(files: VmFiles, options: DiskOptions): Promise<void> {
    return makeOverlayDisks(this.options.runner, files, options);
  }

  private api(files: VmFiles): FirecrackerApi {
    return new FirecrackerApi(this.layoutOf(files).apiSocket);
  }

  /** The launch bangerd-root does for a boot or a restore: the VM's files, linked into the jail under fixed names. */
  private async launch(spec: BootSpec, snapshot: { statePath: string; memPath: string } | null, signal: AbortSignal): Promise<{ pid: number; kernel: string }> {
    const kernel = await (this.options.elfKernel ?? elfOnly)(spec.kernel, signal);
    const disks = launchDisksOf(spec.files);
    fs.mkdirSync(spec.files.dir, { recursive: true });
    const { pid } = await this.options.ops.launchFirecracker({
      firecracker: this.options.firecracker,
      jailer: this.options.jailer,
      netns: spec.netns,
      spec: {
        vmId: spec.vmId, vcpus: spec.vcpus, memoryMib: spec.memoryMib, kernelPath: kernel, initrdPath: spec.files.initrd,
        drives: disks.map((d) => ({ id: d.id, path: d.path, readOnly: d.readOnly })), serialLog: spec.files.serialLog, tap: spec.net.tap, snapshot,
      },
    }, { signal });
    return { pid, kernel };
  }

  /** The requests that come before InstanceStart or a snapshot load: where Firecracker writes what it says. */
  private outputs(layout: FirecrackerLayout, files: VmFiles): FirecrackerRequest[] {
    return [
      requests.logger({ log_path: layout.inside(JAIL_NAMES.log, layout.logFile), level: 'Warning', show_level: true }),
      requests.metrics({ metrics_path: layout.inside(JAIL_NAMES.metrics, layout.metricsFile) }),
      requests.serial({ serial_out_path: layout.inside(JAIL_NAMES.serial, files.serialLog) }),
    ];
  }

  async boot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }> {
    const layout = this.layoutOf(spec.files);
    const { pid, kernel } = await this.launch(spec, null, signal);
    const inside = (name: string, host: string): string => layout.inside(name, host);
    const sequence: FirecrackerRequest[] = [
      ...this.outputs(layout, spec.files),
      requests.machineConfig({ vcpu_count: spec.vcpus, mem_size_mib: spec.memoryMib }),
      requests.bootSource({
        kernel_image_path: inside(JAIL_NAMES.kernel, kernel),
        initrd_path: inside(JAIL_NAMES.initrd, spec.files.initrd),
        boot_args: `${guestCmdline({ accel: 'kvm', tscKhz: null })} ${OVERLAY_CMDLINE_FLAG}`,
      }),
      ...overlayDisksOf(spec.files).map((d) => requests.drive({
        drive_id: d.id, path_on_host: inside(JAIL_NAMES.drive(d.id), d.path), is_root_device: false, is_read_only: d.readOnly,
      })),
      requests.networkInterface({ iface_id: IFACE_ID, host_dev_name: spec.net.tap, guest_mac: spec.net.mac }),
      requests.vsock({ guest_cid: FIRECRACKER_GUEST_CID, uds_path: inside(JAIL_NAMES.vsock, layout.vsockSocket) }),
      requests.action({ action_type: 'InstanceStart' }),
    ];
    await this.configure(spec, pid, sequence);
    return { pid };
  }

  /** Sends `sequence` in order; on any refusal the half-configured Firecracker is killed. */
  private async configure(spec: BootSpec, pid: number, sequence: FirecrackerRequest[]): Promise<void> {
    const api = this.api(spec.files);
    try {
      for (const request of sequence) await api.send(request);
    } catch (err) {
      await this.terminate({ vmId: spec.vmId, pid }, 'SIGKILL').catch(() => undefined);
      this.clearJail(spec.files);
      throw err;
    }
  }

  /** Pauses the guest's vCPUs (PATCH /vm Paused); a snapshot needs it. */
  async pause(vm: { files: VmFiles }): Promise<void> {
    await this.api(vm.files).send(requests.vmState({ state: 'Paused' }));
  }

  async resume(vm: { files: VmFiles }): Promise<void> {
    await this.api(vm.files).send(requests.vmState({ state: 'Resumed' }));
  }

  /**
   * A full snapshot of a paused VM (Firecracker refuses one of a running VM), kept in the VM's directory. Under
   * the jailer Firecracker writes it inside the jail, which the owner owns; it is moved out from there.
   */
  async createSnapshot(vm: { files: VmFiles }): Promise<{ statePath: string; memPath: string }> {
    const layout = this.layoutOf(vm.files);
    fs.mkdirSync(path.dirname(layout.snapshotState), { recursive: true, mode: 0o700 });
    const written = { state: layout.chroot ? layout.hostOf(JAIL_NAMES.snapshotState) : layout.snapshotState, mem: layout.chroot ? layout.hostOf(JAIL_NAMES.snapshotMem) : layout.snapshotMem };
    await this.api(vm.files).send(requests.snapshotCreate({
      snapshot_type: 'Full',
      snapshot_path: layout.inside(JAIL_NAMES.snapshotState, written.state),
      mem_file_path: layout.inside(JAIL_NAMES.snapshotMem, written.mem),
    }), 120_000);
    if (layout.chroot) {
      fs.renameSync(written.state, layout.snapshotState);
      fs.renameSync(written.mem, layout.snapshotMem);
    }
    return { statePath: layout.snapshotState, memPath: layout.snapshotMem };
  }

  /** Starts a fresh Firecracker from the VM's snapshot (its disks in the same places), resumed, on this boot's tap. */
  async bootFromSnapshot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }> {
    const layout = this.layoutOf(spec.files);
    const snapshot = { statePath: layout.snapshotState, memPath: layout.snapshotMem };
    for (const file of Object.values(snapshot)) {
      if (!fs.existsSync(file)) throw new BangerError('VMM_FAILED', `VM ${spec.vmId} has no snapshot (${file} is missing)`, { hint: 'boot it normally: banger vm start NAME' });
    }
    const { pid } = await this.launch(spec, snapshot, signal);
    await this.configure(spec, pid, [
      ...this.outputs(layout, spec.files),
      requests.snapshotLoad({
        snapshot_path: layout.inside(JAIL_NAMES.snapshotState, snapshot.statePath),
        mem_backend: { backend_type: 'File', backend_path: layout.inside(JAIL_NAMES.snapshotMem, snapshot.memPath) },
        resume_vm: true,
        network_overrides: [{ iface_id: IFACE_ID, host_dev_name: spec.net.tap }],
      }),
    ]);
    return { pid };
  }

  /**
   * Firecracker is stopped with SIGKILL once the caller synced the guest: under the jailer it is PID 1 of its
   * own pid namespace, where the kernel drops signals it has no handler for (SIGTERM among them).
   */
  async stop(vm: { vmId: string; pid: number | null; files: VmFiles }): Promise<void> {
    if (this.isAlive(vm.vmId, vm.pid)) {
      this.signal(vm.pid!, 'SIGKILL');
      if (!(await this.waitExit(vm.vmId, vm.pid, 3000))) {
        throw new BangerError('VMM_FAILED', `Firecracker process ${vm.pid} of VM ${vm.vmId} did not exit after SIGKILL`);
      }
    }
    this.clearJail(vm.files);
  }

  async terminate(vm: { vmId: string; pid: number | null }, signal: NodeJS.Signals): Promise<void> {
    if (!this.isAlive(vm.vmId, vm.pid)) return;
    this.signal(vm.pid!, signal);
    if (!(await this.waitExit(vm.vmId, vm.pid, 5000))) {
      throw new BangerError('VMM_FAILED', `Firecracker process ${vm.pid} of VM ${vm.vmId} did not exit within 5s of ${signal}`, {
        hint: 'under the jailer Firecracker ignores signals it has no handler for; send SIGKILL: banger vm kill NAME --signal KILL',
      });
    }
  }

  /**
   * What a stopped VM leaves in its jail: links to its disks and kernel (which would keep a deleted VM's disks
   * on the host), sockets. The jail's root is the owner's, so bangerd empties it itself; bangerd-root makes it
   * afresh at the next launch.
   */
  private clearJail(files: VmFiles): void {
    const layout = this.layoutOf(files);
    try {
      if (layout.chroot) {
        for (const entry of fs.readdirSync(layout.chroot)) fs.rmSync(path.join(layout.chroot, entry), { recursive: true, force: true });
      } else {
        for (const file of [layout.apiSocket, layout.vsockSocket]) fs.rmSync(file, { force: true });
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.options.log?.(`firecracker ${path.basename(files.dir)}: could not clear its jail: ${(err as Error).message}`);
    }
  }

  private signal(pid: number, sig: NodeJS.Signals): void {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }

  private async waitExit(vmId: string, pid: number | null, ms: number): Promise<boolean> {
    const gone = await pollUntil(() => (this.isAlive(vmId, pid) ? undefined : true), { clock: this.options.clock, timeoutMs: ms, intervalMs: 20 });
    return gone === true;
  }

  isAlive(vmId: string, pid: number | null): boolean {
    return isFirecrackerProcess(pid, { execName: this.execName(), jailId: firecrackerJailId(vmId) }, this.options.procRoot);
  }

  /** The running Firecracker of a VM through its pid file (the jailer's), trusted only when the process is it. */
  findVmm(vmId: string, files: VmFiles): number | null {
    let pid: number;
    try {
      pid = readPidFile(this.layoutOf(files).pidFile);
    } catch {
      return null;
    }
    return this.isAlive(vmId, pid) ? pid : null;
  }

  agentEndpoint(files: VmFiles): AgentEndpoint {
    return { kind: 'firecracker-vsock', path: this.layoutOf(files).vsockSocket, port: AGENT_VSOCK_PORT };
  }
}

async function elfOnly(kernel: KernelInfo): Promise<string> {
  if (kernel.format !== 'elf') {
    throw new BangerError('KERNEL_NOT_FOUND', `kernel ${kernel.id} is a bzImage, and Firecracker boots only an ELF vmlinux`, {
      hint: 'import an ELF vmlinux (banger kernel import), or use QEMU: [vmm] driver = "qemu"',
    });
  }
  return kernel.kernelPath;
}
