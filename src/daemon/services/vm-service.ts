import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { KernelInfo, SshTarget, VmCreateParams, VmInfo, VmLogsResult } from '../../protocol/methods.ts';
import { sshCloseMasterCommand, sshCommand } from '../../protocol/ssh-command.ts';
import type { Store } from '../../store/store.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { runChecked } from '../../system/process.ts';
import { gatewayCidrOf, type BangerConfig } from '../../system/config.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import { readPidFile } from '../../system/pid-file.ts';
import { vmFilesIn, type VmFiles, type VmmDriver } from '../../vmm/driver.ts';
import { buildVmConfigArchive } from '../../kernel/initrd.ts';
import type { ImageService } from './image-service.ts';
import type { KernelService } from './kernel-service.ts';

export const VM_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
const ADJECTIVES = ['brisk', 'calm', 'eager', 'fuzzy', 'gentle', 'jolly', 'keen', 'lucky', 'mellow', 'nimble', 'plucky', 'quiet', 'rapid', 'sunny', 'tidy', 'witty'];
const NOUNS = ['badger', 'crane', 'dingo', 'ferret', 'gecko', 'heron', 'ibis', 'koala', 'lemur', 'marten', 'newt', 'otter', 'panda', 'quail', 'raven', 'stoat'];

export interface VmServiceDeps {
  store: Store;
  driver: VmmDriver;
  ops: PrivilegedOps;
  runner: ProcessRunner;
  config: BangerConfig;
  kernels: Pick<KernelService, 'ensureDefault'>;
  images: Pick<ImageService, 'ensure'>;
  vmsDir: string;
  /** banger's own ssh key pair (private key path; the public key is beside it with .pub). */
  sshKey: string;
  log(message: string): void;
  /** Pause between ssh readiness attempts; tests shorten it. */
  sshPollMs?: number;
}

type Ctx = CallContext;

/** The VM lifecycle: all state changes to VMs go through here, one operation per VM at a time. */
export class VmService {
  private readonly deps: VmServiceDeps;
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(deps: VmServiceDeps) {
    this.deps = deps;
  }

  files(id: string): VmFiles {
    return vmFilesIn(path.join(this.deps.vmsDir, id));
  }

  private async withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }

  resolve(ref: string): VmInfo {
    if (ref === '') throw new BangerError('INVALID_ARGUMENT', 'a VM name or id is required');
    const matches = this.deps.store.findVms(ref);
    if (matches.length === 0) throw new BangerError('VM_NOT_FOUND', `no VM named or with id ${JSON.stringify(ref)}`, { hint: 'see banger vm list' });
    if (matches.length > 1) {
      throw new BangerError('INVALID_ARGUMENT', `${JSON.stringify(ref)} matches ${matches.length} VMs (${matches.map((m) => m.name).join(', ')})`, { hint: 'use the full name or a longer id prefix' });
    }
    return matches[0]!;
  }

  /** Current VMs, with any whose VMM died marked stopped. */
  list(): VmInfo[] {
    return this.deps.store.listVms().map((vm) => this.refresh(vm));
  }

  show(ref: string): VmInfo {
    return this.refresh(this.resolve(ref));
  }

  /**
   * Outside a VM's lock: a VM whose VMM died is marked stopped, and its tap is removed under the VM's lock
   * so it cannot race a start. VMs an operation is working on are left to it.
   */
  private refresh(vm: VmInfo): VmInfo {
    if (this.locks.has(vm.id)) return vm;
    const reaped = this.reapIfDead(vm);
    if (reaped !== vm) {
      void this.withLock(vm.id, async () => {
        const current = this.deps.store.getVm(vm.id);
        if (current?.state !== 'stopped') return;
        await this.closeSshMaster(current);
        await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.config.network.netns });
      }).catch((err: unknown) => this.deps.log(`vm ${vm.name}: could not clean up after its VMM died: ${messageOf(err)}`));
    }
    return reaped;
  }

  /** A VM recorded as running whose VMM is gone becomes stopped (its tap and ssh connection are left to the caller). */
  private reapIfDead(vm: VmInfo): VmInfo {
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
  }

  private async reconcileOne(vm: VmInfo): Promise<void> {
    if (vm.state === 'running' && this.deps.driver.isAlive(vm.id, vm.pid)) {
      this.deps.log(`vm ${vm.name}: still running (pid ${vm.pid})`);
      return;
    }
    const stray = this.unrecordedVmmPid(vm);
    if (stray !== null) await this.stopUnrecordedVmm(vm, stray);
    else if (vm.state === 'running') this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
    else return;
    await this.closeSshMaster(vm);
    try {
      await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.config.network.netns });
    } catch (err) {
      this.deps.log(`vm ${vm.name}: could not delete tap ${vm.tap}: ${messageOf(err)}`);
    }
  }

  /**
   * The pid of a VMM nobody recorded: a launch cancelled or timed out in the helper can leave QEMU running after
   * it wrote its pid file. Counts only when that process is this VM's VMM; null when the VM has a recorded pid.
   */
  private unrecordedVmmPid(vm: VmInfo): number | null {
    if (vm.pid !== null) return null;
    let pid: number;
    try {
      // Without following symlinks: the VM's directory is the owner's, and the pid decides what gets stopped.
      pid = readPidFile(this.files(vm.id).pidFile);
    } catch {
      return null;
    }
    return this.deps.driver.isAlive(vm.id, pid) ? pid : null;
  }

  /** Stops such a VMM; the VM becomes stopped, so a later stop or delete also removes the tap it may have left. */
  private async stopUnrecordedVmm(vm: VmInfo, pid: number): Promise<void> {
    this.deps.log(`vm ${vm.name}: stopping VMM process ${pid}, left by a launch that did not finish`);
    await this.deps.driver.stop({ vmId: vm.id, pid, files: this.files(vm.id) });
    this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
  }

  private subnet(): { prefix: string; gateway: string } {
    const base = this.deps.config.network.subnet.split('/')[0]!.split('.').slice(0, 3).join('.');
    return { prefix: base, gateway: `${base}.1` };
  }

  /** The lowest free address in the subnet, so a VM's address depends only on which others exist. */
  private allocateIp(): string {
    const used = this.deps.store.usedIps();
    const { prefix } = this.subnet();
    for (let host = 2; host < 255; host++) {
      const ip = `${prefix}.${host}`;
      if (!used.has(ip)) return ip;
    }
    throw new BangerError('NETWORK_FAILED', `no free address left in ${this.deps.config.network.subnet}`, { hint: 'delete VMs you no longer need (banger vm list)' });
  }

  private pickName(): string {
    const taken = new Set(this.deps.store.listVms().map((v) => v.name));
    for (let i = 0; i < 50; i++) {
      const name = `${ADJECTIVES[crypto.randomInt(ADJECTIVES.length)]}-${NOUNS[crypto.randomInt(NOUNS.length)]}`;
      if (!taken.has(name)) return name;
    }
    return `vm-${crypto.randomBytes(3).toString('hex')}`;
  }

  private validateCreate(params: VmCreateParams): { name: string; image: string; vcpus: number; memoryMib: number; diskGib: number; sshTimeoutSec: number | undefined } {
    const d = this.deps.config.vmDefaults;
    const name = params.name ?? this.pickName();
    if (!VM_NAME_PATTERN.test(name)) {
      throw new BangerError('INVALID_ARGUMENT', `invalid VM name ${JSON.stringify(name)}`, { hint: 'use lowercase letters, digits and "-", starting with a letter or digit (at most 63)' });
    }
    return {
      name,
      image: params.image ?? d.image,
      vcpus: wholeNumber(params.vcpus ?? d.vcpus, 1, 64, 'vcpus'),
      memoryMib: wholeNumber(params.memoryMib ?? d.memoryMib, 128, 1024 * 1024, 'memory (MiB)'),
      diskGib: wholeNumber(params.diskGib ?? d.diskGib, 1, 16 * 1024, 'disk (GiB)'),
      sshTimeoutSec: validSshTimeout(params.sshTimeoutSec),
    };
  }

  private checkNameFree(name: string): void {
    if (this.deps.store.findVms(name).some((v) => v.name === name)) {
      throw new BangerError('VM_NAME_TAKEN', `a VM named ${name} already exists`, { hint: `pick another --name, or remove it: banger vm delete ${name}` });
    }
  }

  async create(params: VmCreateParams, ctx: Ctx): Promise<VmInfo> {
    const spec = this.validateCreate(params);
    this.checkNameFree(spec.name);
    const kernel = await this.deps.kernels.ensureDefault(ctx);
    const choice = await this.deps.driver.selectAccel(kernel, ctx.signal);
    ctx.progress({ stage: 'spec', message: specLine({ ...spec, accel: `${this.deps.driver.name}/${choice.accel}`, reason: choice.reason }) });
    const image = await this.deps.images.ensure(spec.image, ctx);
    throwIfCancelled(ctx.signal);
    // Checked again: another create may have taken the name while the image was built.
    this.checkNameFree(spec.name);
    const id = crypto.randomBytes(6).toString('hex');
    const mac = `52:54:00:${id.slice(6, 8)}:${id.slice(8, 10)}:${id.slice(10, 12)}`;
    const vm: VmInfo = {
      id, name: spec.name, state: 'created', image: image.name, kernel: kernel.id, vcpus: spec.vcpus, memoryMib: spec.memoryMib,
      diskGib: spec.diskGib, ip: this.allocateIp(), mac, tap: `bgt${id}`, accel: null, pid: null, createdAt: new Date().toISOString(),
    };
    this.deps.store.insertVm(vm);
    return this.withLock(id, async () => {
      try {
        ctx.progress({ stage: 'disk', message: `creating disks for ${vm.name} (copy-on-write over ${image.name}, ${vm.diskGib} GiB work disk)` });
        await this.prepareFiles(vm, image.path, ctx.signal);
        if (params.start === false) return vm;
        return await this.startLocked(vm, kernel, { waitSsh: params.waitSsh ?? true, sshTimeoutSec: spec.sshTimeoutSec }, ctx);
      } catch (err) {
        // A guest that booted but never answered ssh is kept for post-mortem; anything else is undone.
        if (err instanceof BangerError && err.code === 'SSH_TIMEOUT') throw err;
        this.deps.log(`vm ${vm.name}: create failed (${messageOf(err)}); removing what was created`);
        try {
          await this.destroyLocked(vm);
        } catch (cleanupErr) {
          this.deps.log(`vm ${vm.name}: cleanup failed: ${messageOf(cleanupErr)}`);
          throw keptAfterFailedCreate(vm, err, cleanupErr);
        }
        throw err;
      }
    });
  }

  private async prepareFiles(vm: VmInfo, baseImage: string, signal: AbortSignal): Promise<void> {
    const files = this.files(vm.id);
    fs.mkdirSync(files.dir, { recursive: true, mode: 0o700 });
    const hostKey = path.join(files.dir, 'ssh_host_ed25519_key');
    await runChecked(this.deps.runner, 'ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `banger-${vm.id}`, '-f', hostKey], { signal });
    const hostKeyPub = fs.readFileSync(`${hostKey}.pub`, 'utf8');
    // Host key made here and pinned, so even the first connection is verified.
    fs.writeFileSync(path.join(files.dir, 'known_hosts'), `${hostKeyAlias(vm)} ${hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`);
    await this.deps.driver.prepareDisks(files, { baseImage, workDiskGib: vm.diskGib, signal });
    const kernel = this.kernelOf(vm);
    const configArchive = buildVmConfigArchive({
      hostname: vm.name,
      ip: vm.ip,
      prefix: 24,
      gateway: this.subnet().gateway,
      machineId: crypto.randomBytes(16).toString('hex'),
      authorizedKeys: fs.readFileSync(`${this.deps.sshKey}.pub`, 'utf8'),
      hostKey: fs.readFileSync(hostKey, 'utf8'),
      hostKeyPub,
    });
    fs.writeFileSync(files.initrd, Buffer.concat([fs.readFileSync(kernel.initrdPath), configArchive]), { mode: 0o600 });
  }

  private kernelOf(vm: VmInfo): KernelInfo {
    const kernel = this.deps.store.getKernel(vm.kernel);
    if (!kernel || !fs.existsSync(kernel.kernelPath)) {
      throw new BangerError('KERNEL_NOT_FOUND', `kernel ${vm.kernel} of VM ${vm.name} is missing`, { hint: `recreate the VM: banger vm delete ${vm.name}` });
    }
    return kernel;
  }

  async start(ref: string, options: { waitSsh?: boolean; sshTimeoutSec?: number }, ctx: Ctx): Promise<VmInfo> {
    validSshTimeout(options.sshTimeoutSec);
    const found = this.resolve(ref);
    return this.withLock(found.id, async () => {
      // A tap left by a VMM that died is replaced by createTap when the VM boots again.
      const vm = this.reapIfDead(this.deps.store.getVm(found.id) ?? found);
      switch (vm.state) {
        case 'running':
          if (options.waitSsh) await this.waitForSsh(vm, options.sshTimeoutSec, ctx);
          return vm;
        case 'created':
        case 'stopped':
          try {
            const kernel = this.kernelOf(vm);
            const choice = await this.deps.driver.selectAccel(kernel, ctx.signal);
            ctx.progress({ stage: 'spec', message: specLine({ ...vm, accel: `${this.deps.driver.name}/${choice.accel}`, reason: choice.reason }) });
            return await this.startLocked(vm, kernel, options, ctx);
          } catch (err) {
            if (err instanceof BangerError && err.code === 'SSH_TIMEOUT') throw err;
            await this.stopLocked(this.deps.store.getVm(vm.id) ?? vm).catch(() => undefined);
            throw err;
          }
      }
    });
  }

  private async startLocked(vm: VmInfo, kernel: KernelInfo, options: { waitSsh?: boolean; sshTimeoutSec?: number | undefined }, ctx: Ctx): Promise<VmInfo> {
    const { config, ops, driver } = this.deps;
    const netns = config.network.netns;
    const choice = await driver.selectAccel(kernel, ctx.signal);
    throwIfCancelled(ctx.signal);
    // A connection left from the last boot would carry the readiness check to a guest that is gone.
    await this.closeSshMaster(vm);
    ctx.progress({ stage: 'network', message: `tap ${vm.tap} on bridge ${config.network.bridge}${netns ? ` in netns ${netns}` : ''}, address ${vm.ip}` });
    // The same address bangerd-root checks against the subnet it was started for.
    await ops.ensureBridge({ bridge: config.network.bridge, gatewayCidr: gatewayCidrOf(config.network.subnet), netns });
    await ops.createTap({ tap: vm.tap, bridge: config.network.bridge, netns });
    ctx.progress({ stage: 'boot', message: `starting ${driver.name}/${choice.accel} (${choice.reason})` });
    let pid: number;
    try {
      ({ pid } = await driver.boot(
        { vmId: vm.id, vcpus: vm.vcpus, memoryMib: vm.memoryMib, kernel, files: this.files(vm.id), net: { tap: vm.tap, mac: vm.mac }, netns, accel: choice.accel },
        ctx.signal,
      ));
    } catch (err) {
      await ops.deleteTap({ tap: vm.tap, netns }).catch(() => undefined);
      throw err;
    }
    this.deps.store.updateVm(vm.id, { state: 'running', pid, accel: choice.accel });
    const running = this.deps.store.getVm(vm.id)!;
    if (options.waitSsh) await this.waitForSsh(running, options.sshTimeoutSec, ctx);
    return running;
  }

  sshTarget(ref: string): SshTarget {
    const vm = this.show(ref);
    if (vm.state !== 'running') {
      throw new BangerError('VM_BAD_STATE', `VM ${vm.name} is ${vm.state}, not running`, { hint: `start it: banger vm start ${vm.name}` });
    }
    return this.targetOf(vm);
  }

  private targetOf(vm: VmInfo): SshTarget {
    return {
      vmId: vm.id,
      name: vm.name,
      ip: vm.ip,
      user: 'root',
      keyPath: this.deps.sshKey,
      knownHostsPath: path.join(this.files(vm.id).dir, 'known_hosts'),
      hostKeyAlias: hostKeyAlias(vm),
      controlPath: path.join(this.files(vm.id).dir, 'ssh.ctl'),
      netns: this.deps.config.network.netns,
    };
  }

  /** Polls until sshd in the guest accepts banger's key, the VMM dies, the caller cancels, or time runs out. */
  private async waitForSsh(vm: VmInfo, timeoutSec: number | undefined, ctx: Ctx): Promise<void> {
    const seconds = timeoutSec ?? this.deps.config.vmm.sshTimeoutSec;
    const deadline = Date.now() + seconds * 1000;
    ctx.progress({ stage: 'ssh', message: `waiting for sshd in ${vm.name} (up to ${seconds}s)` });
    // The connection that proves readiness stays open, so the user's first ssh skips a handshake.
    const { command, args } = sshCommand(this.targetOf(vm), { tty: false, batch: true, connectTimeoutSec: 2, command: ['true'], control: 'master' });
    for (;;) {
      throwIfCancelled(ctx.signal);
      if (!this.deps.driver.isAlive(vm.id, vm.pid)) {
        throw new BangerError('VMM_FAILED', `VM ${vm.name} stopped while booting:\n${this.logTail(vm, 8)}`, { hint: `see the whole console: banger vm logs ${vm.name}` });
      }
      const r = await this.deps.runner.run(command, args, { signal: ctx.signal, timeoutMs: 10_000 });
      if (r.code === 0) return;
      if (Date.now() >= deadline) {
        throw new BangerError('SSH_TIMEOUT', `VM ${vm.name}: sshd did not answer within ${seconds}s; the VM is kept for inspection`, {
          hint: `see its console: banger vm logs ${vm.name}; remove it: banger vm delete ${vm.name}`,
        });
      }
      await sleep(this.deps.sshPollMs ?? 250, ctx.signal);
    }
  }

  private logTail(vm: VmInfo, lines: number): string {
    try {
      return fs.readFileSync(this.files(vm.id).serialLog, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console output)';
    }
  }

  async stop(ref: string): Promise<VmInfo> {
    const found = this.resolve(ref);
    return this.withLock(found.id, async () => {
      const vm = this.deps.store.getVm(found.id) ?? found;
      await this.stopLocked(vm);
      return this.deps.store.getVm(vm.id)!;
    });
  }

  private async stopLocked(vm: VmInfo): Promise<void> {
    switch (vm.state) {
      case 'created':
      case 'stopped': {
        // Nothing should run, but a launch that did not finish may have left a VMM, and a VMM that died its tap.
        const stray = this.unrecordedVmmPid(vm);
        if (stray !== null) await this.stopUnrecordedVmm(vm, stray);
        if (vm.state === 'stopped' || stray !== null) await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.config.network.netns });
        return;
      }
      case 'running':
        break;
    }
    if (this.deps.driver.isAlive(vm.id, vm.pid)) {
      // Flush the guest's page cache so the disks are consistent, then stop the VMM without a slow shutdown.
      const { command, args } = sshCommand(this.targetOf(vm), { tty: false, batch: true, connectTimeoutSec: 2, command: ['sync'], control: 'reuse' });
      const synced = await this.deps.runner.run(command, args, { timeoutMs: 10_000 });
      if (synced.code !== 0) this.deps.log(`vm ${vm.name}: guest sync failed (${synced.stderr.trim() || synced.code}); stopping anyway`);
    }
    await this.closeSshMaster(vm);
    await this.deps.driver.stop({ vmId: vm.id, pid: vm.pid, files: this.files(vm.id) });
    this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
    await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.config.network.netns });
  }

  async delete(ref: string): Promise<{ id: string; name: string }> {
    const found = this.resolve(ref);
    return this.withLock(found.id, async () => {
      const vm = this.deps.store.getVm(found.id);
      if (!vm) throw new BangerError('VM_NOT_FOUND', `VM ${found.name} was deleted meanwhile`);
      await this.destroyLocked(vm);
      return { id: vm.id, name: vm.name };
    });
  }

  /**
   * Removes everything a VM has: VMM, tap, files, store row, in that order, so a failure can be retried. When the
   * tap cannot be removed the VM is kept, stopped: its row is the only record of that tap.
   */
  private async destroyLocked(vm: VmInfo): Promise<void> {
    const current = this.deps.store.getVm(vm.id) ?? vm;
    await this.closeSshMaster(vm);
    const pid = current.pid ?? this.unrecordedVmmPid(current);
    if (current.state === 'running' || this.deps.driver.isAlive(vm.id, pid)) {
      await this.deps.driver.stop({ vmId: vm.id, pid, files: this.files(vm.id) });
      this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
    }
    try {
      await this.deps.ops.deleteTap({ tap: vm.tap, netns: this.deps.config.network.netns });
    } catch (err) {
      this.deps.store.updateVm(vm.id, { state: 'stopped', pid: null });
      throw tapKeptError(current, err);
    }
    fs.rmSync(this.files(vm.id).dir, { recursive: true, force: true });
    this.deps.store.deleteVm(vm.id);
  }

  /** Ends the shared ssh connection so no ssh process outlives the VM. */
  private async closeSshMaster(vm: VmInfo): Promise<void> {
    const target = this.targetOf(vm);
    if (!target.controlPath || !fs.existsSync(target.controlPath)) return;
    const close = sshCloseMasterCommand(target);
    if (close) await this.deps.runner.run(close.command, close.args, { timeoutMs: 5_000 });
    fs.rmSync(target.controlPath, { force: true });
  }

  logs(ref: string, offset = 0): VmLogsResult {
    const vm = this.resolve(ref);
    const file = this.files(vm.id).serialLog;
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch {
      return { data: '', offset: 0 };
    }
    try {
      const size = fs.fstatSync(fd).size;
      const start = offset > size ? 0 : offset;
      const length = Math.min(size - start, 4 * 1024 * 1024);
      const buf = Buffer.alloc(length);
      fs.readSync(fd, buf, 0, length, start);
      return { data: buf.toString('utf8'), offset: start + length };
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** The line users see first: what they are about to get. */
export function specLine(s: { name: string; vcpus: number; memoryMib: number; diskGib: number; image: string; accel: string; reason: string }): string {
  return `${s.name}: ${s.vcpus} vCPU, ${s.memoryMib} MiB RAM, ${s.diskGib} GiB disk, image ${s.image}, ${s.accel} (${s.reason})`;
}

function wholeNumber(value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BangerError('INVALID_ARGUMENT', `${what} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
  }
  return value;
}

/** Seconds to wait for sshd, when given. */
function validSshTimeout(value: unknown): number | undefined {
  return value === undefined ? undefined : wholeNumber(value, 1, 3600, 'ssh timeout (seconds)');
}

/** Why a VM could not be deleted because its tap is still there, and how to finish the job. */
function tapKeptError(vm: VmInfo, err: unknown): BangerError {
  const cause = err instanceof BangerError ? err : null;
  const message = `tap ${vm.tap} of VM ${vm.name} could not be removed (${messageOf(err)}); the VM is kept, stopped, so the tap is not forgotten`;
  if (cause?.code === 'HELPER_UNAVAILABLE') {
    return new BangerError('HELPER_UNAVAILABLE', message, {
      hint: `start bangerd-root, then rerun: banger vm delete ${vm.name}${cause.hint ? `; ${cause.hint}` : ''}`,
      cause: err,
    });
  }
  return new BangerError(cause?.code ?? 'NETWORK_FAILED', message, {
    hint: `${cause?.hint ? `${cause.hint}; then ` : ''}rerun: banger vm delete ${vm.name}`,
    cause: err,
  });
}

/** A create that failed and whose undoing failed too: the first failure, and that the VM is still there. */
function keptAfterFailedCreate(vm: VmInfo, err: unknown, cleanupErr: unknown): BangerError {
  const cleanup = cleanupErr instanceof BangerError ? cleanupErr : null;
  return new BangerError(err instanceof BangerError ? err.code : 'INTERNAL', `${messageOf(err)}\nundoing the create failed: ${messageOf(cleanupErr)}`, {
    hint: cleanup?.hint ?? `remove it: banger vm delete ${vm.name}`,
    cause: err,
  });
}

function hostKeyAlias(vm: VmInfo): string {
  return `banger-${vm.id}`;
}

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new BangerError('CANCELLED', 'cancelled by the caller');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
