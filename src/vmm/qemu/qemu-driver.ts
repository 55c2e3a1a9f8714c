import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { KernelInfo } from '../../protocol/methods.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { runChecked } from '../../system/process.ts';
import { PROBE_MARKER, WORK_LABEL } from '../../system/guest-contract.ts';
import type { AccelChoice, BootSpec, VmFiles, VmmDriver } from '../driver.ts';
import type { Accel as ConfigAccel } from '../../system/config.ts';
import { buildQemuArgv, guestCmdline, qemuProcessName } from '../../system/qemu-argv.ts';
import { findExecutable } from '../../system/executable.ts';
import { qmpCommand } from './qmp.ts';
import { raceSignal } from '../../system/race-signal.ts';

const PROBE_TIMEOUT_MS = 20_000;

/** Host TSC frequency in kHz, so a TCG guest need not calibrate it (that calibration can hang). */
export function hostTscKhz(): number | null {
  try {
    const khz = Number(fs.readFileSync('/sys/devices/system/cpu/cpu0/tsc_freq_khz', 'utf8').trim());
    if (khz > 0) return khz;
  } catch {
    // Most kernels do not export it; fall through to cpuinfo.
  }
  try {
    const m = /^cpu MHz\s*:\s*([\d.]+)/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) return Math.round(Number(m[1]) * 1000);
  } catch {
    // No cpuinfo: the guest calibrates itself.
  }
  return null;
}

export interface QemuDriverOptions {
  runner: ProcessRunner;
  ops: PrivilegedOps;
  qemu: string;
  accel: ConfigAccel;
  /** Where probe results are cached. */
  cacheFile: string;
  kvmDevice?: string;
}

export class QemuDriver implements VmmDriver {
  readonly name = 'qemu';
  private readonly options: QemuDriverOptions;
  private readonly tscKhz = hostTscKhz();
  /** Probes under way, by cache key: callers share one, and it outlives any one caller's cancel. */
  private readonly probing = new Map<string, Promise<AccelChoice>>();

  constructor(options: QemuDriverOptions) {
    this.options = options;
  }

  async selectAccel(kernel: KernelInfo, signal: AbortSignal): Promise<AccelChoice> {
    // Checked first, so a missing QEMU is reported before minutes of image building.
    findExecutable(this.options.qemu);
    const kvmDevice = this.options.kvmDevice ?? '/dev/kvm';
    const hasKvm = (): boolean => {
      try {
        fs.accessSync(kvmDevice, fs.constants.R_OK | fs.constants.W_OK);
        return true;
      } catch {
        return false;
      }
    };
    switch (this.options.accel) {
      case 'tcg':
        return { accel: 'tcg', reason: 'vmm.accel = "tcg" in config' };
      case 'kvm':
        if (!hasKvm()) throw new BangerError('VMM_FAILED', `vmm.accel = "kvm" but ${kvmDevice} is not usable`, { hint: 'set vmm.accel = "auto" or fix /dev/kvm permissions' });
        return { accel: 'kvm', reason: 'vmm.accel = "kvm" in config' };
      case 'auto':
        if (!hasKvm()) return { accel: 'tcg', reason: `no usable ${kvmDevice}` };
        return this.sharedProbe(kernel, signal);
    }
  }

  private sharedProbe(kernel: KernelInfo, signal: AbortSignal): Promise<AccelChoice> {
    // Keyed by what decides the outcome; the version retires results recorded by an older probe.
    const key = `${kernel.id} ${this.options.qemu} probe-v2`;
    const cached = this.readProbeCache()[key];
    if (cached) return Promise.resolve(cached);
    let probe = this.probing.get(key);
    if (!probe) {
      probe = this.probeKvm(kernel, key).finally(() => this.probing.delete(key));
      this.probing.set(key, probe);
    }
    return raceSignal(probe, signal, 'cancelled while probing KVM');
  }

  /** Boots the kernel under KVM into the probe mode of banger's initrd; some /dev/kvm (nested, paravirtual) cannot run it. */
  private async probeKvm(kernel: KernelInfo, key: string): Promise<AccelChoice> {
    const result = await this.options.runner.run(
      this.options.qemu,
      ['-M', 'microvm', '-accel', 'kvm', '-cpu', 'host', '-m', '256M', '-kernel', kernel.kernelPath, '-initrd', kernel.initrdPath,
        '-append', guestCmdline({ accel: 'kvm', tscKhz: null, probe: true }), '-nodefaults', '-no-user-config', '-display', 'none',
        '-serial', 'stdio', '-no-reboot'],
      { timeoutMs: PROBE_TIMEOUT_MS },
    );
    const firstError = result.stderr.trim().split('\n')[0];
    const choice: AccelChoice = result.stdout.includes(PROBE_MARKER)
      ? { accel: 'kvm', reason: 'KVM booted a test guest' }
      : result.timedOut
        ? { accel: 'tcg', reason: `KVM did not boot a test guest within ${PROBE_TIMEOUT_MS / 1000}s; using software emulation` }
        : { accel: 'tcg', reason: `KVM cannot run this guest here (${firstError?.replace(/^.*?error: /, '') || `qemu ${result.code ?? result.signal}`}); using software emulation` };
    // A guest that did not finish in time may only have met a busy host; the next VM asks again.
    if (!result.timedOut) {
      const cache = this.readProbeCache();
      cache[key] = choice;
      fs.mkdirSync(path.dirname(this.options.cacheFile), { recursive: true });
      fs.writeFileSync(this.options.cacheFile, JSON.stringify(cache, null, 2));
    }
    return choice;
  }

  private readProbeCache(): Record<string, AccelChoice> {
    try {
      return JSON.parse(fs.readFileSync(this.options.cacheFile, 'utf8')) as Record<string, AccelChoice>;
    } catch {
      return {};
    }
  }

  async prepareDisks(files: VmFiles, options: { baseImage: string; workDiskGib: number; signal: AbortSignal }): Promise<void> {
    const { runner } = this.options;
    // The overlay records only the blocks the guest writes; the image itself is shared read-only.
    await runChecked(runner, 'qemu-img', ['create', '-q', '-f', 'qcow2', '-b', options.baseImage, '-F', 'raw', files.rootDisk], { signal: options.signal });
    // A sparse file with a fresh filesystem costs a few milliseconds whatever its size.
    const fd = fs.openSync(files.workDisk, 'w', 0o600);
    fs.ftruncateSync(fd, options.workDiskGib * 1024 ** 3);
    fs.closeSync(fd);
    await runChecked(runner, 'mkfs.ext4', ['-q', '-F', '-L', WORK_LABEL, '-E', 'root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1', files.workDisk], { signal: options.signal });
  }

  async boot(spec: BootSpec, signal: AbortSignal): Promise<{ pid: number }> {
    const { files } = spec;
    fs.rmSync(files.qmpSocket, { force: true });
    fs.writeFileSync(files.serialLog, '');
    return this.options.ops.launchQemu(
      {
        qemu: this.options.qemu,
        netns: spec.netns,
        spec: {
          vmId: spec.vmId,
          accel: spec.accel,
          vcpus: spec.vcpus,
          memoryMib: spec.memoryMib,
          kernelPath: spec.kernel.kernelPath,
          initrdPath: files.initrd,
          cmdline: guestCmdline({ accel: spec.accel, tscKhz: this.tscKhz }),
          disks: [
            { id: 'root', path: files.rootDisk, format: 'qcow2' },
            { id: 'work', path: files.workDisk, format: 'raw' },
          ],
          net: spec.net,
          qmpSocket: files.qmpSocket,
          serialLog: files.serialLog,
          pidFile: files.pidFile,
        },
      },
      { signal },
    );
  }

  /** The argv the helper will run, for benchmarks and --dry-run style output. */
  argvFor(spec: BootSpec): string[] {
    return [this.options.qemu, ...buildQemuArgv({
      vmId: spec.vmId, accel: spec.accel, vcpus: spec.vcpus, memoryMib: spec.memoryMib, kernelPath: spec.kernel.kernelPath,
      initrdPath: spec.files.initrd, cmdline: guestCmdline({ accel: spec.accel, tscKhz: this.tscKhz }),
      disks: [{ id: 'root', path: spec.files.rootDisk, format: 'qcow2' }, { id: 'work', path: spec.files.workDisk, format: 'raw' }],
      net: spec.net, qmpSocket: spec.files.qmpSocket, serialLog: spec.files.serialLog, pidFile: spec.files.pidFile,
    })];
  }

  async stop(vm: { vmId: string; pid: number | null; files: VmFiles }): Promise<void> {
    if (!this.isAlive(vm.vmId, vm.pid)) return;
    try {
      await qmpCommand(vm.files.qmpSocket, 'quit');
    } catch (err) {
      // QMP may be wedged; a signal does the same job.
      process.stderr.write(`qemu ${vm.vmId}: QMP quit failed (${messageOf(err)}); sending SIGTERM\n`);
      this.signal(vm.pid!, 'SIGTERM');
    }
    if (await this.waitExit(vm.vmId, vm.pid, 3000)) return;
    this.signal(vm.pid!, 'SIGKILL');
    if (!(await this.waitExit(vm.vmId, vm.pid, 3000))) {
      throw new BangerError('VMM_FAILED', `QEMU process ${vm.pid} of VM ${vm.vmId} did not exit after SIGKILL`);
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
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (!this.isAlive(vmId, pid)) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return !this.isAlive(vmId, pid);
  }

  isAlive(vmId: string, pid: number | null): boolean {
    if (!pid) return false;
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmdline.includes(qemuProcessName(vmId))) return false;
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      return !/^\d+ \(.*\) Z/.test(stat);
    } catch {
      return false;
    }
  }
}
