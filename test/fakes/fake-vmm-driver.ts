// A VmmDriver that boots nothing: pids are counters, liveness is a map, disks are small files.
import fs from 'node:fs';
import { BangerError } from '../../src/protocol/errors.ts';
import type { KernelInfo } from '../../src/protocol/methods.ts';
import path from 'node:path';
import type { AccelChoice, BootSpec, DiskOptions, VmFiles, VmmDriver } from '../../src/vmm/driver.ts';
import type { AgentEndpoint } from '../../src/vmm/agent-dial.ts';
import { readPidFile } from '../../src/system/pid-file.ts';

export class FakeVmmDriver implements VmmDriver {
  readonly name = 'fake';
  readonly boots: BootSpec[] = [];
  readonly stops: Array<{ vmId: string; pid: number | null }> = [];
  readonly kills: Array<{ vmId: string; pid: number | null; signal: NodeJS.Signals }> = [];
  /** When true, the VMM survives every signal but SIGKILL (kill fails as QemuDriver's does). */
  ignoresSignals = false;
  readonly preparedDisks: VmFiles[] = [];
  /** For each work disk made with a seed: the seed's entries (relative paths, directories ending in /), sorted. */
  readonly workDiskSeeds: string[][] = [];
  /** When set, boot throws this. */
  bootError: Error | null = null;
  /** When true, boot returns a pid but the VMM is already gone (a guest that dies at once). */
  dieOnBoot = false;
  /**
   * With bootError: the VMM starts and writes its pid file before boot fails, so nobody learns its pid (a launch
   * cancelled or timed out in the helper after QEMU daemonized).
   */
  bootErrorLeavesVmm = false;
  private readonly alive = new Map<string, number>();
  private nextPid = 1000;

  /** The decision selectAccel gives; knownAccel gives it too while `accelKnown` is true. */
  accelChoice: AccelChoice = { accel: 'tcg', reason: 'fake driver' };
  accelKnown = true;
  /** When set, selectAccel waits for it (to show what runs alongside the decision). */
  accelGate: Promise<void> | null = null;
  readonly accelCalls: Array<{ kernel: string; fresh: boolean }> = [];

  /** A decision under way: selectAccel answers `choice` once the returned function is called. */
  decideLater(choice: AccelChoice): () => void {
    let open!: () => void;
    this.accelKnown = false;
    this.accelChoice = choice;
    this.accelGate = new Promise((resolve) => {
      open = resolve;
    });
    return open;
  }

  knownAccel(_kernel: KernelInfo): AccelChoice | null {
    return this.accelKnown ? this.accelChoice : null;
  }

  async selectAccel(kernel: KernelInfo, options: { signal: AbortSignal; fresh?: boolean }): Promise<AccelChoice> {
    this.accelCalls.push({ kernel: kernel.id, fresh: options.fresh === true });
    if (this.accelGate) await this.accelGate;
    return this.accelChoice;
  }

  async prepareDisks(files: VmFiles, options: DiskOptions): Promise<void> {
    this.preparedDisks.push(files);
    // The seed is gone once the disk is made: what it held is kept here, as mkfs.ext4 -d would keep it.
    if (options.workDiskSeed) this.workDiskSeeds.push(listTree(options.workDiskSeed));
    fs.writeFileSync(files.rootDisk, `overlay over ${options.baseImage}\n`);
    fs.writeFileSync(files.workDisk, `work disk ${options.workDiskGib} GiB\n`);
  }

  async boot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }> {
    this.boots.push(spec);
    if (signal.aborted) throw new Error('fake boot: aborted');
    if (this.bootError) {
      if (this.bootErrorLeavesVmm) this.startUnrecorded(spec.vmId, spec.files);
      throw this.bootError;
    }
    const pid = this.nextPid++;
    fs.writeFileSync(spec.files.pidFile, `${pid}\n`);
    fs.writeFileSync(spec.files.serialLog, `fake console of ${spec.vmId}\nlast line\n`);
    if (!this.dieOnBoot) this.alive.set(spec.vmId, pid);
    return { pid };
  }

  /** A VMM for `vmId` that runs and wrote its pid file (as QEMU writes it), though no boot returned its pid. */
  startUnrecorded(vmId: string, files: VmFiles): number {
    const pid = this.nextPid++;
    fs.writeFileSync(files.pidFile, `${pid}\n`);
    this.alive.set(vmId, pid);
    return pid;
  }

  async stop(vm: { vmId: string; pid: number | null; files: VmFiles }): Promise<void> {
    this.stops.push({ vmId: vm.vmId, pid: vm.pid });
    this.alive.delete(vm.vmId);
  }

  async terminate(vm: { vmId: string; pid: number | null }, signal: NodeJS.Signals): Promise<void> {
    if (!this.isAlive(vm.vmId, vm.pid)) return;
    this.kills.push({ vmId: vm.vmId, pid: vm.pid, signal });
    if (this.ignoresSignals && signal !== 'SIGKILL') throw new BangerError('VMM_FAILED', `fake VMM ${vm.pid} ignored ${signal}`);
    this.alive.delete(vm.vmId);
  }

  isAlive(vmId: string, pid: number | null): boolean {
    return pid !== null && this.alive.get(vmId) === pid;
  }

  findVmm(vmId: string, files: VmFiles): number | null {
    let pid: number;
    try {
      // As the real drivers read it: never through a symlink.
      pid = readPidFile(files.pidFile);
    } catch {
      return null;
    }
    return this.isAlive(vmId, pid) ? pid : null;
  }

  /** The VMM exits on its own (crash, guest poweroff). */
  kill(vmId: string): void {
    this.alive.delete(vmId);
  }

  aliveCount(): number {
    return this.alive.size;
  }

  agentEndpoint(files: VmFiles): AgentEndpoint {
    return { kind: 'virtio-serial', path: files.agentSocket };
  }
}

function listTree(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const rel = path.relative(root, path.join(dir, entry.name));
      if (entry.isDirectory()) {
        out.push(`${rel}/`);
        walk(path.join(dir, entry.name));
      } else out.push(rel);
    }
  };
  walk(root);
  return out.sort();
}
