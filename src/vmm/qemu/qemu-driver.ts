import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { KernelInfo } from '../../protocol/methods.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import { runChecked } from '../../system/process.ts';
import type { AccelChoice, BootSpec, DiskOptions, VmFiles, VmmDriver } from '../driver.ts';
import { makeWorkDisk } from '../work-disk.ts';
import type { AgentEndpoint } from '../agent-dial.ts';
import { buildQemuArgv, guestCmdline } from '../../system/qemu-argv.ts';
import { qemuProcessProblem } from '../../system/qemu-process.ts';
import { PVH_KERNEL_FILE } from '../../system/guest-contract.ts';
import { qmpCommand } from './qmp.ts';
import { pollUntil } from '../../system/clock.ts';
import { readPidFile } from '../../system/pid-file.ts';
import { AccelProbe, type AccelProbeOptions } from './accel-probe.ts';

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

/**
 * The file QEMU boots for a stored kernel: the PVH vmlinux kept beside a bzImage when there is one (it skips the
 * bzImage's real-mode start and self-decompression), else the kernel file itself.
 */
export function qemuBootKernel(kernelPath: string): string {
  const pvh = path.join(path.dirname(kernelPath), PVH_KERNEL_FILE);
  return fs.existsSync(pvh) ? pvh : kernelPath;
}

export interface QemuDriverOptions extends AccelProbeOptions {
  ops: PrivilegedOps;
  /** The /proc to read processes from (tests pass a fake tree). */
  procRoot?: string;
}

export class QemuDriver implements VmmDriver {
  readonly name = 'qemu';
  private readonly options: QemuDriverOptions;
  private readonly tscKhz = hostTscKhz();
  private readonly accel: AccelProbe;

  constructor(options: QemuDriverOptions) {
    this.options = options;
    this.accel = new AccelProbe(options);
  }

  knownAccel(kernel: KernelInfo): AccelChoice | null {
    return this.accel.known(kernel);
  }

  selectAccel(kernel: KernelInfo, options: { signal: AbortSignal; fresh?: boolean }): Promise<AccelChoice> {
    return this.accel.decide(kernel, options);
  }

  async prepareDisks(files: VmFiles, options: DiskOptions): Promise<void> {
    const { runner } = this.options;
    // The overlay records only the blocks the guest writes; the image itself is shared read-only.
    await runChecked(runner, 'qemu-img', ['create', '-q', '-f', 'qcow2', '-b', options.baseImage, '-F', 'raw', files.rootDisk], { signal: options.signal });
    await makeWorkDisk(runner, files.workDisk, options);
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
          kernelPath: qemuBootKernel(spec.kernel.kernelPath),
          initrdPath: files.initrd,
          cmdline: guestCmdline({ accel: spec.accel, tscKhz: this.tscKhz }),
          disks: [
            { id: 'root', path: files.rootDisk, format: 'qcow2' },
            { id: 'work', path: files.workDisk, format: 'raw' },
          ],
          net: spec.net,
          qmpSocket: files.qmpSocket,
          agentSocket: files.agentSocket,
          serialLog: files.serialLog,
          pidFile: files.pidFile,
        },
      },
      { signal },
    );
  }

  agentEndpoint(files: VmFiles): AgentEndpoint {
    return { kind: 'virtio-serial', path: files.agentSocket };
  }

  /** The argv the helper will run, for benchmarks and --dry-run style output. */
  argvFor(spec: BootSpec): string[] {
    return [this.options.qemu, ...buildQemuArgv({
      vmId: spec.vmId, accel: spec.accel, vcpus: spec.vcpus, memoryMib: spec.memoryMib, kernelPath: qemuBootKernel(spec.kernel.kernelPath),
      initrdPath: spec.files.initrd, cmdline: guestCmdline({ accel: spec.accel, tscKhz: this.tscKhz }),
      disks: [{ id: 'root', path: spec.files.rootDisk, format: 'qcow2' }, { id: 'work', path: spec.files.workDisk, format: 'raw' }],
      net: spec.net, qmpSocket: spec.files.qmpSocket, agentSocket: spec.files.agentSocket, serialLog: spec.files.serialLog, pidFile: spec.files.pidFile,
    })];
  }

  async stop(vm: { vmId: string; pid: number | null; files: VmFiles }): Promise<void> {
    if (!this.isAlive(vm.vmId, vm.pid)) return;
    try {
      await qmpCommand(vm.files.qmpSocket, 'quit');
    } catch (err) {
      // QMP may be wedged; a signal does the same job.
      this.options.log?.(`qemu ${vm.vmId}: QMP quit failed (${messageOf(err)}); sending SIGTERM`);
      this.signal(vm.pid!, 'SIGTERM');
    }
    if (await this.waitExit(vm.vmId, vm.pid, 3000)) return;
    this.signal(vm.pid!, 'SIGKILL');
    if (!(await this.waitExit(vm.vmId, vm.pid, 3000))) {
      throw new BangerError('VMM_FAILED', `QEMU process ${vm.pid} of VM ${vm.vmId} did not exit after SIGKILL`);
    }
  }

  async terminate(vm: { vmId: string; pid: number | null }, signal: NodeJS.Signals): Promise<void> {
    if (!this.isAlive(vm.vmId, vm.pid)) return;
    this.signal(vm.pid!, signal);
    if (!(await this.waitExit(vm.vmId, vm.pid, 5000))) {
      throw new BangerError('VMM_FAILED', `QEMU process ${vm.pid} of VM ${vm.vmId} did not exit within 5s of ${signal}`, {
        hint: 'send SIGKILL, which it cannot ignore: banger vm kill NAME --signal KILL',
      });
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
    const gone = await pollUntil(() => (this.isAlive(vmId, pid) ? undefined : true), { clock: this.options.clock, timeoutMs: ms, intervalMs: 50 });
    return gone === true;
  }

  findVmm(vmId: string, files: VmFiles): number | null {
    let pid: number;
    try {
      // Without following symlinks: the VM's directory is the owner's, and the pid decides what gets signalled.
      pid = readPidFile(files.pidFile);
    } catch {
      return null;
    }
    return this.isAlive(vmId, pid) ? pid : null;
  }

  /**
   * Whether `pid` is this VM's QEMU (system/qemu-process.ts, the check bangerd-root makes too). A pid file the
   * owner can write, or a reused pid, can name any process; this decides what gets signalled. No uid is asked
   * for: bangerd runs as the owner, so its signals reach only the owner's processes anyway.
   */
  isAlive(vmId: string, pid: number | null): boolean {
    return qemuProcessProblem({ procDir: this.options.procRoot ?? '/proc', vmId, pid }) === null;
  }
}
