// VMs whose VMM went away: marked stopped, with the tap and ssh connection they left cleaned up. Also finds a
// VMM nobody recorded (a launch that did not finish) through its pid file.
import { messageOf } from '../../protocol/errors.ts';
import type { NatParams, PrivilegedOps } from '../../protocol/privileged-ops.ts';
import type { VmInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import type { VmFiles, VmmDriver } from '../../vmm/driver.ts';
import type { GuestSsh } from './guest-ssh.ts';
import type { VmLocks } from './vm-locks.ts';
import { unhandledState } from './vm-errors.ts';

export interface VmReaperDeps {
  store: Store;
  driver: VmmDriver;
  ops: PrivilegedOps;
  ssh: GuestSsh;
  locks: VmLocks;
  netns: string | null;
  bridge: string;
  files(id: string): VmFiles;
  log(message: string): void;
}

export class VmReaper {
  private readonly deps: VmReaperDeps;

  constructor(deps: VmReaperDeps) {
    this.deps = deps;
  }

  /**
   * Outside a VM's lock: a VM whose VMM died is marked stopped, and its tap is removed under the VM's lock so it
   * cannot race a start. VMs an operation is working on are left to it.
   */
  refresh(vm: VmInfo): VmInfo {
    if (this.deps.locks.isHeld(vm.id)) return vm;
    const reaped = this.reapIfDead(vm);
    if (reaped !== vm) {
      void this.deps.locks.run(vm.id, async () => {
        const current = this.deps.store.getVm(vm.id);
        if (current?.state !== 'stopped') return;
        await this.deps.ssh.closeMaster(current);
        await this.deps.ops.natDisable(this.natParams(vm));
        await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.netns });
      }).catch((err: unknown) => this.deps.log(`vm ${vm.name}: could not clean up after its VMM died: ${messageOf(err)}`));
    }
    return reaped;
  }

  /** A VM recorded as running whose VMM is gone becomes stopped (its tap and ssh connection are left to the caller). */
  reapIfDead(vm: VmInfo): VmInfo {
    if (vm.state !== 'running' || this.deps.driver.isAlive(vm.id, vm.pid)) return vm;
    this.deps.log(`vm ${vm.name}: VMM process ${vm.pid} is gone; marking stopped`);
    this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
    return this.deps.store.getVm(vm.id)!;
  }

  /**
   * At daemon start: VMs whose VMM survived keep running; the rest are marked stopped and their taps removed. A
   * VMM whose pid was never recorded (its launch did not finish) is stopped.
   */
  async reconcile(): Promise<void> {
    for (const vm of this.deps.store.listVms()) {
      try {
        await this.reconcileOne(vm);
      } catch (err) {
        this.deps.log(`vm ${vm.name}: ${messageOf(err)}`);
      }
    }
    try {
      await this.reconcileNat();
    } catch (err) {
      this.deps.log(`NAT rules: ${messageOf(err)}`);
    }
  }

  /**
   * After the VMs are reconciled: NAT stays only for running VMs with nat. A daemon killed between a VM's end and
   * its cleanup leaves rules for an address another VM may get next; those go, and a running VM's missing one comes back.
   */
  private async reconcileNat(): Promise<void> {
    const { ips } = await this.deps.ops.natList({ bridge: this.deps.bridge, netns: this.deps.netns });
    const wanted = this.deps.store.listVms().filter((vm) => vm.nat && vm.state === 'running');
    for (const ip of ips) {
      if (wanted.some((vm) => vm.ip === ip)) continue;
      this.deps.log(`NAT for ${ip}: no running VM with nat has that address; removing it`);
      await this.deps.ops.natDisable({ ip, bridge: this.deps.bridge, netns: this.deps.netns });
    }
    for (const vm of wanted) {
      if (ips.includes(vm.ip)) continue;
      this.deps.log(`vm ${vm.name}: its NAT rules are missing; adding them again`);
      await this.deps.ops.natEnable(this.natParams(vm));
    }
  }

  private natParams(vm: VmInfo): NatParams {
    return { ip: vm.ip, bridge: this.deps.bridge, netns: this.deps.netns };
  }

  private async reconcileOne(vm: VmInfo): Promise<void> {
    switch (vm.state) {
      case 'running':
        if (this.deps.driver.isAlive(vm.id, vm.pid)) {
          this.deps.log(`vm ${vm.name}: still running (pid ${vm.pid})`);
          return;
        }
        break;
      case 'created':
      case 'stopped':
        break;
      default:
        unhandledState(vm.state);
    }
    const stray = this.unrecordedVmmPid(vm);
    if (stray !== null) await this.stopUnrecordedVmm(vm, stray);
    else if (vm.state === 'running') this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
    else return;
    await this.deps.ssh.closeMaster(vm);
    try {
      await this.deps.ops.natDisable(this.natParams(vm));
    } catch (err) {
      this.deps.log(`vm ${vm.name}: could not remove NAT for ${vm.ip}: ${messageOf(err)}`);
    }
    try {
      await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.netns });
    } catch (err) {
      this.deps.log(`vm ${vm.name}: could not delete tap ${vm.tap}: ${messageOf(err)}`);
    }
  }

  /**
   * The pid of a VMM nobody recorded: a launch cancelled or timed out in the helper can leave QEMU running after
   * it wrote its pid file. Counts only when that process is this VM's VMM; null when the VM has a recorded pid.
   */
  unrecordedVmmPid(vm: VmInfo): number | null {
    if (vm.pid !== null) return null;
    return this.deps.driver.findVmm(vm.id, this.deps.files(vm.id));
  }

  /** Stops such a VMM; the VM becomes stopped, so a later stop or delete also removes the tap it may have left. */
  async stopUnrecordedVmm(vm: VmInfo, pid: number): Promise<void> {
    this.deps.log(`vm ${vm.name}: stopping VMM process ${pid}, left by a launch that did not finish`);
    await this.deps.driver.stop({ vmId: vm.id, pid, files: this.deps.files(vm.id) });
    this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
  }
}
