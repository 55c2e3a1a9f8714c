// The VM lifecycle: every state change of a VM goes through here, one operation per VM at a time.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { KernelInfo, SshTarget, VmCreateParams, VmInfo, VmLogsResult, VmPruneResult, VmSetParams } from '../../protocol/methods.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import type { Store } from '../../store/store.ts';
import { isoNow, type Clock } from '../../system/clock.ts';
import { gatewayCidrOf, type BangerConfig } from '../../system/config.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { vmFilesIn, type AccelChoice, type VmFiles, type VmmDriver } from '../../vmm/driver.ts';
import type { ImageService } from './image-service.ts';
import type { KernelService } from './kernel-service.ts';
import { GuestSsh } from './guest-ssh.ts';
import { waitForAll, type GuestWait } from './guest-ready.ts';
import { imageTraits, requireSshd } from './vm-image.ts';
import { readSerialLog, serialLogTail } from './serial-log.ts';
import { allocateIp, checkNameFree, newVmIdentity, pickName, subnetOf } from './vm-allocation.ts';
import { isBootTimeout, keptAfterFailedCreate, notRunningError, throwIfCancelled, unhandledState } from './vm-errors.ts';
import { prepareVmFiles, writeVmInitrd, type WorkDiskSeed } from './vm-files.ts';
import type { GuestAgents } from './agent-service.ts';
import { VmTeardown } from './vm-teardown.ts';
import { VmLocks } from './vm-locks.ts';
import { VmReaper } from './vm-reaper.ts';
import { oneVm } from '../../protocol/vm-refs.ts';
import { DEFAULT_KILL_SIGNAL } from '../../protocol/kill-signals.ts';
import { growWorkDisk, planVmSet } from './vm-resize.ts';
import { pruneCandidates, pruneEach } from './vm-prune.ts';
import { copyFileSync, resolveFileSync } from './file-sync.ts';
import { specLine, validSshTimeout, vmSpecOf, type VmSpec } from './vm-spec.ts';
import { accelFor, announceSpec, type Accel, type Announcer } from './vm-announce.ts';


export interface VmServiceDeps {
  store: Store;
  driver: VmmDriver;
  ops: PrivilegedOps;
  runner: ProcessRunner;
  clock: Clock;
  config: BangerConfig;
  kernels: Pick<KernelService, 'ensureDefault' | 'ensure'>;
  images: Pick<ImageService, 'ensure'>;
  vmsDir: string;
  /** banger's own ssh key pair (private key path; the public key is beside it with .pub). */
  sshKey: string;
  /** The owner's home directory, where [[file_sync]] reads from; os.homedir() when not given. */
  home?: string;
  /** Guest agents: every boot waits for the VM's agent to say hello. */
  agents: GuestAgents;
  /** The guest agent binary each VM's initrd carries. */
  agentBinary(): Buffer;
  log(message: string): void;
}

export interface StartOptions {
  waitSsh?: boolean;
  sshTimeoutSec?: number;
  /** Decide KVM or TCG afresh instead of using the decision remembered for this host boot. */
  freshAccel?: boolean;
}

type Ctx = CallContext;

/** What a create adds for a caller that builds on the new VM (a workspace): both run under the VM's lock. */
export interface CreateExtras {
  /** Builds the directory the work disk (the guest's /root) is made with, before the VM first boots. */
  seedWorkDisk?(ctx: Ctx): Promise<WorkDiskSeed>;
  /** Once sshd answers on the first boot; a failure fails the create, and the VM is removed. Needs `waitSsh`. */
  afterFirstBoot?(vm: VmInfo, target: SshTarget, ctx: Ctx): Promise<void>;
}

export class VmService {
  private readonly deps: VmServiceDeps;
  private readonly locks = new VmLocks();
  private readonly ssh: GuestSsh;
  private readonly reaper: VmReaper;
  private readonly announcer: Announcer;
  private readonly teardown: VmTeardown;
  private readonly stoppedListeners: Array<(vmId: string) => void> = [];

  constructor(deps: VmServiceDeps) {
    this.deps = deps;
    this.announcer = { driverName: deps.driver.name, clock: deps.clock };
    const netns = deps.config.network.netns;
    this.ssh = new GuestSsh({ runner: deps.runner, clock: deps.clock, sshKey: deps.sshKey, netns, vmDir: (id) => this.files(id).dir, log: deps.log });
    this.reaper = new VmReaper({
      store: deps.store, driver: deps.driver, ops: deps.ops, ssh: this.ssh, locks: this.locks, netns, bridge: deps.config.network.bridge, files: (id) => this.files(id), log: deps.log,
    });
    this.teardown = new VmTeardown({
      store: deps.store, driver: deps.driver, ops: deps.ops, agents: deps.agents, ssh: this.ssh, reaper: this.reaper, netns, bridge: deps.config.network.bridge,
      files: (id) => this.files(id), stopped: (id) => this.stopped(id), log: deps.log,
    });
  }

  /** Tells `listener` about each VM that stopped or was deleted. */
  onStopped(listener: (vmId: string) => void): void {
    this.stoppedListeners.push(listener);
  }

  private stopped(vmId: string): void {
    for (const listener of this.stoppedListeners) listener(vmId);
  }

  files(id: string): VmFiles {
    return vmFilesIn(path.join(this.deps.vmsDir, id));
  }

  resolve(ref: string): VmInfo {
    return oneVm(ref, ref === '' ? [] : this.deps.store.findVms(ref));
  }

  /** Current VMs, with any whose VMM died marked stopped. */
  list(): VmInfo[] {
    return this.deps.store.listVms().map((vm) => this.reaper.refresh(vm));
  }

  show(ref: string): VmInfo {
    return this.reaper.refresh(this.resolve(ref));
  }

  /** At daemon start: what a killed daemon's creates left is removed, then VmReaper.reconcile. */
  async reconcile(): Promise<void> {
    await this.teardown.undoUnfinishedCreates();
    return this.reaper.reconcile();
  }

  /**
   * Creates a VM and, unless `start: false`, boots it. The accelerator decision (a KVM probe on the first VM of a
   * host boot) runs alongside the image, disks and network; the boot waits for it.
   */
  async create(params: Omit<VmCreateParams, 'workspace'>, ctx: Ctx, extras: CreateExtras = {}): Promise<VmInfo> {
    const { store, config } = this.deps;
    const spec = vmSpecOf(params, config.vmDefaults, () => pickName(store));
    checkNameFree(store, spec.name);
    // Before any disk or tap: an entry that breaks a rule stops the create here (copied at the first boot).
    resolveFileSync(config.fileSync, this.home());
    const kernel = await this.deps.kernels.ensureDefault(ctx);
    const accel = accelFor(this.deps.driver, kernel, params.freshAccel === true, ctx.signal);
    const announced = announceSpec(ctx, accel, this.announcer, (text) => specLine({ ...spec, nat: params.nat === true, accel: text }));
    try {
      return await this.createAnnounced(params, spec, kernel, accel, announced.ctx, extras);
    } finally {
      // However the create ends, the spec line and every stage reach the caller before its answer does.
      announced.flush();
    }
  }

  private async createAnnounced(params: Omit<VmCreateParams, 'workspace'>, spec: VmSpec, defaultKernel: KernelInfo, accel: Accel, ctx: Ctx, extras: CreateExtras): Promise<VmInfo> {
    const { store, driver, config } = this.deps;
    const image = await this.deps.images.ensure(spec.image, ctx);
    throwIfCancelled(ctx.signal);
    // An image made for another kernel (a catalog bundle's kernel_ref) boots that one; the KVM decision above
    // is about the host, whichever kernel probed it.
    const kernel = image.kernelRef ? await this.deps.kernels.ensure(image.kernelRef, ctx) : defaultKernel;
    // Checked again: another create may have taken the name while the image was built.
    checkNameFree(store, spec.name);
    const { id, mac, tap } = newVmIdentity();
    const vm: VmInfo = {
      id, name: spec.name, state: 'created', image: image.name, kernel: kernel.id, vcpus: spec.vcpus, memoryMib: spec.memoryMib,
      diskGib: spec.diskGib, ip: allocateIp(store, config.network.subnet), mac, tap, accel: null, pid: null, createdAt: isoNow(this.deps.clock),
      nat: params.nat === true, workspace: null,
    };
    store.insertVm(vm, { unfinished: true });
    const finished = (v: VmInfo): VmInfo => (store.finishCreate(id), v);
    return this.locks.run(id, async () => {
      try {
        ctx.progress({ stage: 'disk', message: `creating disks for ${vm.name} (copy-on-write over ${image.name}, ${vm.diskGib} GiB work disk)` });
        await prepareVmFiles({
          vm, files: this.files(id), kernel, baseImage: image.path, gateway: subnetOf(config.network.subnet).gateway, sshKey: this.deps.sshKey,
          runner: this.deps.runner, driver, signal: ctx.signal, agent: this.deps.agentBinary(), boot: image.boot, ...(extras.seedWorkDisk ? { seedWorkDisk: () => extras.seedWorkDisk!(ctx) } : {}),
        });
        if (params.start === false) return finished(vm);
        const running = await this.startLocked(vm, kernel, accel, { waitSsh: params.waitSsh ?? true, sshTimeoutSec: spec.sshTimeoutSec }, ctx);
        if (!extras.afterFirstBoot) return finished(running);
        await extras.afterFirstBoot(running, this.ssh.target(running), ctx);
        return finished(store.getVm(id)!);
      } catch (err) {
        // A guest that booted but never answered ssh is kept for post-mortem; anything else is undone.
        if (isBootTimeout(err)) {
          store.finishCreate(id);
          throw err;
        }
        this.deps.log(`vm ${vm.name}: create failed (${messageOf(err)}); removing what was created`);
        try {
          await this.teardown.destroy(vm);
        } catch (cleanupErr) {
          this.deps.log(`vm ${vm.name}: cleanup failed: ${messageOf(cleanupErr)}`);
          throw keptAfterFailedCreate(vm, err, cleanupErr);
        }
        throw err;
      }
    });
  }

  private kernelOf(vm: VmInfo): KernelInfo {
    const kernel = this.deps.store.getKernel(vm.kernel);
    if (!kernel || !fs.existsSync(kernel.kernelPath)) {
      throw new BangerError('KERNEL_NOT_FOUND', `kernel ${vm.kernel} of VM ${vm.name} is missing`, { hint: `recreate the VM: banger vm delete ${vm.name}` });
    }
    return kernel;
  }

  async start(ref: string, options: StartOptions, ctx: Ctx): Promise<VmInfo> {
    validSshTimeout(options.sshTimeoutSec);
    const found = this.resolve(ref);
    return this.locks.run(found.id, async () => {
      // A tap left by a VMM that died is replaced by createTap when the VM boots again.
      const vm = this.reaper.reapIfDead(this.deps.store.getVm(found.id) ?? found);
      switch (vm.state) {
        case 'running':
          if (options.waitSsh && imageTraits(this.deps.store, vm).hasSshd) await this.waitForSsh(vm, options.sshTimeoutSec, ctx);
          return vm;
        case 'created':
        case 'stopped':
          try {
            const kernel = this.kernelOf(vm);
            const accel = accelFor(this.deps.driver, kernel, options.freshAccel === true, ctx.signal);
            const announced = announceSpec(ctx, accel, this.announcer, (text) => specLine({ ...vm, accel: text }));
            try {
              return await this.startLocked(vm, kernel, accel, options, announced.ctx);
            } finally {
              announced.flush();
            }
          } catch (err) {
            if (isBootTimeout(err)) throw err;
            await this.teardown.stop(this.deps.store.getVm(vm.id) ?? vm).catch(() => undefined);
            throw err;
          }
        default:
          return unhandledState(vm.state);
      }
    });
  }

  private async startLocked(vm: VmInfo, kernel: KernelInfo, accel: Accel, options: StartOptions, ctx: Ctx): Promise<VmInfo> {
    const { config, ops, driver } = this.deps;
    const netns = config.network.netns;
    const image = imageTraits(this.deps.store, vm);
    throwIfCancelled(ctx.signal);
    // A connection left from the last boot would carry the readiness check to a guest that is gone.
    await this.ssh.closeMaster(vm);
    this.deps.agents.disconnect(vm.id);
    // A VM made by an earlier banger boots with this one's agent.
    if (vm.state !== 'created') {
      writeVmInitrd({
        vm, files: this.files(vm.id), kernel, gateway: subnetOf(config.network.subnet).gateway, sshKey: this.deps.sshKey, agent: this.deps.agentBinary(), boot: image.boot,
      });
    }
    ctx.progress({ stage: 'network', message: `tap ${vm.tap} on bridge ${config.network.bridge}${netns ? ` in netns ${netns}` : ''}, address ${vm.ip}` });
    // The same address bangerd-root checks against the subnet it was started for.
    await ops.ensureBridge({ bridge: config.network.bridge, gatewayCidr: gatewayCidrOf(config.network.subnet), netns });
    await ops.createTap({ tap: vm.tap, bridge: config.network.bridge, netns });
    const nat = { ip: vm.ip, bridge: config.network.bridge, netns };
    let pid: number;
    let choice: AccelChoice;
    try {
      // Set either way: NAT follows the VM's setting, and an address never inherits another VM's.
      if (vm.nat) ctx.progress({ stage: 'network', message: `NAT: ${vm.ip} reaches beyond the host, masqueraded` });
      await (vm.nat ? ops.natEnable(nat) : ops.natDisable(nat));
      choice = await accel.decided;
      if (!accel.shown) ctx.progress({ stage: 'accel', message: `${driver.name}/${choice.accel} (${choice.reason})` });
      ctx.progress({ stage: 'boot', message: `starting ${driver.name}/${choice.accel}` });
      ({ pid } = await driver.boot(
        { vmId: vm.id, vcpus: vm.vcpus, memoryMib: vm.memoryMib, kernel, files: this.files(vm.id), net: { tap: vm.tap, mac: vm.mac }, netns, accel: choice.accel },
        ctx.signal,
      ));
    } catch (err) {
      await ops.natDisable(nat).catch(() => undefined);
      await ops.deleteTap({ tap: vm.tap, netns }).catch(() => undefined);
      throw err;
    }
    this.deps.store.updateVm(vm.id, { state: 'running', pid, accel: choice.accel });
    const running = this.deps.store.getVm(vm.id)!;
    // The agent gets the configured boot wait (or a longer --ssh-timeout): a short --ssh-timeout is about sshd.
    const agentWait: GuestWait = (c) => this.deps.agents.waitReady(running, Math.max(config.vmm.sshTimeoutSec, options.sshTimeoutSec ?? 0), c, this.bootProbes(running));
    // An image without sshd is reached through its agent alone.
    const waitSsh = options.waitSsh === true && image.hasSshd;
    await waitForAll(ctx, waitSsh ? [agentWait, (c) => this.waitForSsh(running, options.sshTimeoutSec, c)] : [agentWait]);
    if (vm.state === 'created') await this.syncFiles(running, waitSsh, image.hasSshd ? null : `image ${vm.image} has no sshd, which copying needs for now`, ctx);
    return running;
  }


  private home(): string {
    return this.deps.home ?? os.homedir();
  }

  /** [[file_sync]] on a VM's first boot, once sshd answers (a boot that does not wait for it copies nothing). */
  private async syncFiles(vm: VmInfo, sshReady: boolean, cannot: string | null, ctx: Ctx): Promise<void> {
    await copyFileSync({
      vm, entries: this.deps.config.fileSync, home: this.home(), now: this.deps.clock.now(), runner: this.deps.runner, sshReady, cannot,
      target: this.ssh.target(vm), scratch: this.files(vm.id).dir, ctx, log: this.deps.log,
    });
  }

  private waitForSsh(vm: VmInfo, timeoutSec: number | undefined, ctx: Ctx): Promise<void> {
    return this.ssh.waitReady(vm, timeoutSec ?? this.deps.config.vmm.sshTimeoutSec, ctx, this.bootProbes(vm));
  }

  private bootProbes(vm: VmInfo): { vmmAlive(): boolean; consoleTail(): string } {
    return {
      vmmAlive: () => this.deps.driver.isAlive(vm.id, vm.pid),
      consoleTail: () => serialLogTail(this.files(vm.id).serialLog, 8),
    };
  }

  /**
   * Runs `fn` on a running VM while holding its lock, so no stop, delete or second workspace runs meanwhile.
   * `what` names the operation in the refusal when the VM is not running.
   */
  async withRunningVm<T>(ref: string, what: string, fn: (vm: VmInfo, target: SshTarget) => Promise<T>): Promise<T> {
    const found = this.resolve(ref);
    return this.locks.run(found.id, async () => {
      const vm = this.reaper.refresh(this.deps.store.getVm(found.id) ?? found);
      if (vm.state !== 'running') {
        throw notRunningError(vm, what);
      }
      requireSshd(this.deps.store, vm, what);
      return fn(vm, this.ssh.target(vm));
    });
  }

  sshTarget(ref: string): SshTarget {
    const vm = this.show(ref);
    if (vm.state !== 'running') {
      throw notRunningError(vm);
    }
    requireSshd(this.deps.store, vm, 'an ssh session');
    return this.ssh.target(vm);
  }

  async stop(ref: string): Promise<VmInfo> {
    const found = this.resolve(ref);
    return this.locks.run(found.id, async () => {
      const vm = this.deps.store.getVm(found.id) ?? found;
      await this.teardown.stop(vm);
      return this.deps.store.getVm(vm.id)!;
    });
  }

  async delete(ref: string): Promise<{ id: string; name: string }> {
    const found = this.resolve(ref);
    return this.locks.run(found.id, async () => {
      const vm = this.deps.store.getVm(found.id);
      if (!vm) throw new BangerError('VM_NOT_FOUND', `VM ${found.name} was deleted meanwhile`, { hint: 'see banger vm list --all' });
      await this.teardown.destroy(vm);
      return { id: vm.id, name: vm.name };
    });
  }

  /** Ends the VMM with `signal` (no guest sync): the VM ends stopped and its tap is removed, like vm stop. */
  async kill(ref: string, signal: NodeJS.Signals = DEFAULT_KILL_SIGNAL): Promise<VmInfo> {
    const found = this.resolve(ref);
    return this.locks.run(found.id, async () => {
      await this.teardown.stop(this.deps.store.getVm(found.id) ?? found, { signal });
      return this.deps.store.getVm(found.id)!;
    });
  }

  /**
   * vm stop, then vm start (a stopped VM is only started). Two operations, each under the VM's lock: whatever
   * another caller asks for in between (a start, a delete) is done in between, as if typed by hand.
   */
  async restart(ref: string, options: StartOptions, ctx: Ctx): Promise<VmInfo> {
    validSshTimeout(options.sshTimeoutSec);
    const { id } = await this.stop(ref);
    return this.start(id, options, ctx);
  }

  /** New vCPUs, memory or a larger work disk for a VM that is not running; they apply from its next boot. */
  async set(params: VmSetParams): Promise<VmInfo> {
    const found = this.resolve(params.ref);
    return this.locks.run(found.id, async () => {
      const vm = this.reaper.reapIfDead(this.deps.store.getVm(found.id) ?? found);
      switch (vm.state) {
        case 'running':
          throw new BangerError('VM_BAD_STATE', `VM ${vm.name} is running; its size can change only while it is stopped`, {
            hint: `stop it first: banger vm stop ${vm.name}, then rerun vm set (and start it again: banger vm start ${vm.name})`,
          });
        case 'created':
        case 'stopped': {
          const change = planVmSet(vm, params);
          if (change.diskGib !== undefined) await growWorkDisk({ runner: this.deps.runner, file: this.files(vm.id).workDisk, gib: change.diskGib });
          this.deps.store.updateVm(vm.id, change);
          return this.deps.store.getVm(vm.id)!;
        }
        default:
          return unhandledState(vm.state);
      }
    });
  }

  /** Deletes every VM that is not running (only those of `ids` when given), each under its lock, all at once. */
  async prune(ids?: string[]): Promise<VmPruneResult> {
    return pruneEach(pruneCandidates(this.list(), ids), (candidate) => this.locks.run(candidate.id, async () => {
      const vm = this.deps.store.getVm(candidate.id);
      // Started or deleted since the listing: not this prune's to delete.
      if (!vm || this.reaper.reapIfDead(vm).state === 'running') return false;
      await this.teardown.destroy(vm);
      return true;
    }));
  }

  logs(ref: string, offset = 0): VmLogsResult {
    return readSerialLog(this.files(this.resolve(ref).id).serialLog, offset);
  }
}
