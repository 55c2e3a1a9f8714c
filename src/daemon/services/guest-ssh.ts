// banger's ssh into its guests: the target clients use, the readiness wait, guest sync, and the shared connection.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { SshTarget, VmInfo } from '../../protocol/methods.ts';
import { guestBatchCommand, sshCloseMasterCommand, sshCommand } from '../../protocol/ssh-command.ts';
import { pollUntil, type Clock } from '../../system/clock.ts';
import type { ProcessRunner } from '../../system/process.ts';

/** Pause between readiness attempts. */
const SSH_POLL_MS = 250;

export interface GuestSshDeps {
  runner: ProcessRunner;
  clock: Clock;
  /** banger's private key (the public key is beside it with .pub). */
  sshKey: string;
  netns: string | null;
  /** The VM's own directory (known_hosts, control socket). */
  vmDir(id: string): string;
  log(message: string): void;
}

export function hostKeyAlias(vm: Pick<VmInfo, 'id'>): string {
  return `banger-${vm.id}`;
}

export class GuestSsh {
  private readonly deps: GuestSshDeps;

  constructor(deps: GuestSshDeps) {
    this.deps = deps;
  }

  target(vm: VmInfo): SshTarget {
    const dir = this.deps.vmDir(vm.id);
    return {
      vmId: vm.id,
      name: vm.name,
      ip: vm.ip,
      user: 'root',
      keyPath: this.deps.sshKey,
      knownHostsPath: path.join(dir, 'known_hosts'),
      hostKeyAlias: hostKeyAlias(vm),
      controlPath: path.join(dir, 'ssh.ctl'),
      netns: this.deps.netns,
      workdir: vm.workspace?.dir ?? '/root',
    };
  }

  /**
   * Polls until sshd in the guest accepts banger's key. Fails at once when `vmmAlive` says the VMM died (with
   * the console's last lines), with CANCELLED when the caller cancels, and with SSH_TIMEOUT after `seconds`.
   */
  async waitReady(vm: VmInfo, seconds: number, ctx: CallContext, probes: { vmmAlive(): boolean; consoleTail(): string }): Promise<void> {
    ctx.progress({ stage: 'ssh', message: `waiting for sshd in ${vm.name} (up to ${seconds}s)` });
    // The connection that proves readiness stays open, so the user's first ssh skips a handshake.
    const { command, args } = sshCommand(this.target(vm), { tty: false, batch: true, connectTimeoutSec: 2, command: ['true'], control: 'master' });
    const ready = await pollUntil(async () => {
      if (!probes.vmmAlive()) {
        throw new BangerError('VMM_FAILED', `VM ${vm.name} stopped while booting:\n${probes.consoleTail()}`, { hint: `see the whole console: banger vm logs ${vm.name}` });
      }
      const r = await this.deps.runner.run(command, args, { signal: ctx.signal, timeoutMs: 10_000 });
      return r.code === 0 ? true : undefined;
    }, { clock: this.deps.clock, timeoutMs: seconds * 1000, intervalMs: SSH_POLL_MS, signal: ctx.signal });
    if (ctx.signal.aborted) throw new BangerError('CANCELLED', 'cancelled by the caller');
    if (!ready) {
      throw new BangerError('SSH_TIMEOUT', `VM ${vm.name}: sshd did not answer within ${seconds}s; the VM is kept for inspection`, {
        hint: `see its console: banger vm logs ${vm.name}; remove it: banger vm delete ${vm.name}`,
      });
    }
  }

  /** Flushes the guest's page cache so its disks are consistent before the VMM stops; a failure is logged, not fatal. */
  async sync(vm: VmInfo): Promise<void> {
    const { command, args } = guestBatchCommand(this.target(vm), ['sync'], 2);
    const synced = await this.deps.runner.run(command, args, { timeoutMs: 10_000 });
    if (synced.code !== 0) this.deps.log(`vm ${vm.name}: guest sync failed (${synced.stderr.trim() || synced.code}); stopping anyway`);
  }

  /** Ends the shared ssh connection so no ssh process outlives the VM. */
  async closeMaster(vm: VmInfo): Promise<void> {
    const target = this.target(vm);
    if (!target.controlPath || !fs.existsSync(target.controlPath)) return;
    const close = sshCloseMasterCommand(target);
    if (close) await this.deps.runner.run(close.command, close.args, { timeoutMs: 5_000 });
    fs.rmSync(target.controlPath, { force: true });
  }
}
