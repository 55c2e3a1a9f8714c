// The VMM driver bangerd uses when Firecracker may run VMs: new VMs go to the chosen driver (driver-choice.ts),
// decided once per daemon, at the latest with the first VM's accelerator decision; every VM stays with the driver
// that made its disks, recorded in its directory (`vmm`), so VMs of both kinds run side by side and are found
// again after a restart whatever the choice is then.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { KernelInfo } from '../protocol/methods.ts';
import type { VmmDriverChoice } from '../system/config.ts';
import type { AgentEndpoint } from './agent-dial.ts';
import { chooseDriver, type DriverChoice, type DriverName } from './driver-choice.ts';
import type { AccelChoice, BootSpec, DiskOptions, VmFiles, VmmDriver } from './driver.ts';

export interface VmmRouterOptions {
  qemu: VmmDriver;
  /** Null when no Firecracker driver can be built (never for driver = "firecracker"). */
  firecracker: VmmDriver | null;
  configured: VmmDriverChoice;
  firecrackerBin: string;
  firecrackerFound: string | null;
  /** What `firecracker --version` said, for the spec line and the minimum version; null when unknown. */
  firecrackerVersion?: string | null;
  kvmUsable: boolean;
  /** A VM's directory, where its driver is recorded. */
  vmDir(vmId: string): string;
}

/** The file in a VM's directory naming its driver; VMs made before it existed are QEMU's. */
const MARKER = 'vmm';

export class VmmRouter implements VmmDriver {
  private readonly options: VmmRouterOptions;
  private choice: DriverChoice | null;
  private deciding: Promise<DriverChoice> | null = null;

  constructor(options: VmmRouterOptions) {
    this.options = options;
    this.choice = this.decide(null);
  }

  /** The driver new VMs get: the one decided, or QEMU while the decision waits for the KVM verdict. */
  get name(): string {
    return this.choice?.driver ?? 'qemu';
  }

  /** The decision so far; null while it waits for the first KVM verdict. */
  current(): DriverChoice | null {
    return this.choice;
  }

  private decide(verdict: AccelChoice | null): DriverChoice | null {
    const o = this.options;
    return chooseDriver({
      configured: o.configured, firecrackerBin: o.firecrackerBin, firecrackerFound: o.firecrackerFound, kvmUsable: o.kvmUsable, firecrackerVersion: o.firecrackerVersion ?? null,
      kvmVerdict: verdict === null ? null : { runs: verdict.accel === 'kvm', reason: verdict.reason },
    });
  }

  private driver(name: DriverName): VmmDriver {
    if (name === 'qemu') return this.options.qemu;
    if (this.options.firecracker) return this.options.firecracker;
    throw new BangerError('VMM_FAILED', 'this VM was made for Firecracker, and Firecracker is not configured now', {
      hint: 'set [vmm] driver = "firecracker" (or "auto") and firecracker_bin in config.toml, then banger daemon stop',
    });
  }

  /** What a VM's directory says made it (QEMU when it says nothing). */
  private driverOf(vmId: string): VmmDriver {
    let recorded = 'qemu';
    try {
      recorded = fs.readFileSync(path.join(this.options.vmDir(vmId), MARKER), 'utf8').trim();
    } catch {
      // Made before drivers were recorded: QEMU's.
    }
    return this.driver(recorded === 'firecracker' ? 'firecracker' : 'qemu');
  }

  /** The chosen driver's accelerator, its reason followed by why that driver. */
  private withChoice(choice: DriverChoice, accel: AccelChoice): AccelChoice {
    return { ...accel, vmm: choice.driver, reason: `${accel.reason}; ${choice.reason}` };
  }

  knownAccel(kernel: KernelInfo): AccelChoice | null {
    if (!this.choice) {
      const verdict = this.options.qemu.knownAccel(kernel);
      this.choice = verdict ? this.decide(verdict) : null;
    }
    if (!this.choice) return null;
    const accel = this.driver(this.choice.driver).knownAccel(kernel);
    return accel ? this.withChoice(this.choice, accel) : null;
  }

  async selectAccel(kernel: KernelInfo, options: { signal: AbortSignal; fresh?: boolean }): Promise<AccelChoice> {
    if (!this.choice) {
      // The first VM's KVM verdict decides; VMs asking meanwhile share it.
      this.deciding ??= this.options.qemu.selectAccel(kernel, options).then((verdict) => (this.choice = this.decide(verdict) ?? { driver: 'qemu', reason: 'auto: no KVM verdict' }));
      await this.deciding;
    }
    const choice = this.choice!;
    return this.withChoice(choice, await this.driver(choice.driver).selectAccel(kernel, options));
  }

  /**
   * Made by the driver chosen now (waiting for the decision under way), which is recorded for the VM's life. A
   * create asks for the accelerator first (knownAccel or selectAccel), which decides or starts deciding.
   */
  async prepareDisks(files: VmFiles, options: DiskOptions): Promise<void> {
    const choice = this.choice ?? (this.deciding ? await this.deciding : { driver: 'qemu' as const, reason: '' });
    fs.mkdirSync(files.dir, { recursive: true });
    fs.writeFileSync(path.join(files.dir, MARKER), `${choice.driver}\n`);
    await this.driver(choice.driver).prepareDisks(files, options);
  }

  boot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }> {
    return this.driverOf(spec.vmId).boot(spec, signal);
  }

  stop(vm: { vmId: string; pid: number | null; files: VmFiles }): Promise<void> {
    return this.driverOf(vm.vmId).stop(vm);
  }

  terminate(vm: { vmId: string; pid: number | null }, signal: NodeJS.Signals): Promise<void> {
    return this.driverOf(vm.vmId).terminate(vm, signal);
  }

  isAlive(vmId: string, pid: number | null): boolean {
    return this.driverOf(vmId).isAlive(vmId, pid);
  }

  findVmm(vmId: string, files: VmFiles): number | null {
    return this.driverOf(vmId).findVmm(vmId, files);
  }

  agentEndpoint(files: VmFiles): AgentEndpoint {
    return this.driverOf(path.basename(files.dir)).agentEndpoint(files);
  }
}

