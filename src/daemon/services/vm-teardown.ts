// The stopping half of the VM lifecycle, run under the VM's lock by VmService: stopping a VMM (synced, or with a
// signal for vm kill) and destroying everything a VM has. Both leave the host as they found it before the VM:
// no VMM, no tap, no NAT entry.
import fs from 'node:fs';
import { messageOf } from '../../protocol/errors.ts';
import type { NatParams, PrivilegedOps } from '../../protocol/privileged-ops.ts';
import type { VmInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import type { VmFiles, VmmDriver } from '../../vmm/driver.ts';
import type { GuestAgents } from './agent-service.ts';
import type { GuestSsh } from './guest-ssh.ts';
import type { VmReaper } from './vm-reaper.ts';
import { natKeptError, tapKeptError, unhandledState } from './vm-errors.ts';

export interface VmTeardownDeps {
  store: Store;
  driver: VmmDriver;
  ops: PrivilegedOps;
  agents: GuestAgents;
  ssh: GuestSsh;
  reaper: VmReaper;
  netns: string | null;
  bridge: string;
  files(id: string): VmFiles;
  /** Told about each VM that stopped or was deleted (its forwards end). */
  stopped(vmId: string): void;
  log(message: string): void;
}

export class VmTeardown {
  private readonly deps: VmTeardownDeps;

  constructor(deps: VmTeardownDeps) {
    this.deps = deps;
  }

  /** With `how.signal` (vm kill), the VMM gets that signal instead of a guest sync and a clean quit. */
  async stop(vm: VmInfo, how: { signal?: NodeJS.Signals } = {}): Promise<void> {
    const { netns } = this.deps;
    switch (vm.state) {
      case 'created':
      case 'stopped': {
        // Nothing should run, but a launch that did not finish may have left a VMM, and a VMM that died its tap.
        const stray = this.deps.reaper.unrecordedVmmPid(vm);
        if (stray !== null && how.signal) {
          await this.deps.driver.terminate({ vmId: vm.id, pid: stray }, how.signal);
          this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
        } else if (stray !== null) await this.deps.reaper.stopUnrecordedVmm(vm, stray);
        if (vm.state === 'stopped' || stray !== null) {
          await this.deps.ops.natDisable(this.natParams(vm));
          await this.deps.ops.deleteTap({ tap: vm.tap, netns });
        }
        return;
      }
      case 'running':
        // Flush the guest's page cache so the disks are consistent, then stop the VMM without a slow shutdown.
        this.deps.agents.disconnect(vm.id);
        if (how.signal) {
          await this.deps.ssh.closeMaster(vm);
          await this.deps.driver.terminate({ vmId: vm.id, pid: vm.pid }, how.signal);
        } else {
          // Through the agent (no ssh handshake); ssh when the agent does not answer.
          if (this.deps.driver.isAlive(vm.id, vm.pid) && !(await this.deps.agents.sync(vm))) await this.deps.ssh.sync(vm);
          await this.deps.ssh.closeMaster(vm);
          await this.deps.driver.stop({ vmId: vm.id, pid: vm.pid, files: this.deps.files(vm.id) });
        }
        this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
        this.deps.stopped(vm.id);
        await this.deps.ops.natDisable(this.natParams(vm));
        await this.deps.ops.deleteTap({ tap: vm.tap, netns });
        return;
      default:
        unhandledState(vm.state);
    }
  }

  /**
   * Removes everything a VM has: VMM, tap, files, store row, in that order, so a failure can be retried. When the
   * tap cannot be removed the VM is kept, stopped: its row is the only record of that tap.
   */
  async destroy(vm: VmInfo): Promise<void> {
    const current = this.deps.store.getVm(vm.id) ?? vm;
    await this.deps.ssh.closeMaster(vm);
    this.deps.agents.disconnect(vm.id);
    const pid = current.pid ?? this.deps.reaper.unrecordedVmmPid(current);
    if (current.state === 'running' || this.deps.driver.isAlive(vm.id, pid)) {
      await this.deps.driver.stop({ vmId: vm.id, pid, files: this.deps.files(vm.id) });
      this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
    }
    this.deps.stopped(vm.id);
    try {
      await this.deps.ops.natDisable(this.natParams(vm));
    } catch (err) {
      this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
      throw natKeptError(current, err);
    }
    try {
      await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.netns });
    } catch (err) {
      this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
      throw tapKeptError(current, err);
    }
    fs.rmSync(this.deps.files(vm.id).dir, { recursive: true, force: true });
    this.deps.store.deleteVm(vm.id);
  }

  /**
   * At daemon start, before anything else runs: the VMs whose create never finished (the daemon that made them
   * was killed) are removed whole, VMM, tap, NAT rules, disks and row, as a failed create removes them.
   */
  async undoUnfinishedCreates(): Promise<void> {
    for (const vm of this.deps.store.unfinishedVms()) {
      this.deps.log(`vm ${vm.name}: its create did not finish (bangerd was stopped during it); removing what it made`);
      try {
        await this.destroy(vm);
      } catch (err) {
        this.deps.log(`vm ${vm.name}: could not remove it: ${messageOf(err)}; it stays, stopped (banger vm delete ${vm.name})`);
        this.deps.store.finishCreate(vm.id);
      }
    }
  }

  /** Whether or not the VM has NAT: its address is what bangerd-root adds or removes. */
  private natParams(vm: VmInfo): NatParams {
    return { ip: vm.ip, bridge: this.deps.bridge, netns: this.deps.netns };
  }
}
