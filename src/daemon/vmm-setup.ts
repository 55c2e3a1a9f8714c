// The VMM driver bangerd runs VMs with, from [vmm] in config.toml: QEMU alone for driver = "qemu"; otherwise a
// VmmRouter that gives new VMs Firecracker or QEMU (driver-choice.ts) and keeps each VM with the driver that made it.
import { FIRECRACKER_MIN_VERSION, parseFirecrackerVersion } from '../protocol/vmm-versions.ts';
import { isOlderVersion } from '../protocol/versions.ts';
import path from 'node:path';
import { elfKernelOf } from '../kernel/kernel-elf.ts';
import type { PrivilegedOps } from '../protocol/privileged-ops.ts';
import type { Clock } from '../system/clock.ts';
import type { BangerConfig } from '../system/config.ts';
import { findExecutable, versionLineOf } from '../system/executable.ts';
import { kvmDeviceUsable } from '../system/kvm-device.ts';
import type { ProcessRunner } from '../system/process.ts';
import type { VmmDriver } from '../vmm/driver.ts';
import { FirecrackerDriver } from '../vmm/firecracker/firecracker-driver.ts';
import { QemuDriver } from '../vmm/qemu/qemu-driver.ts';
import { VmmRouter } from '../vmm/vmm-router.ts';

export interface VmmSetup {
  config: BangerConfig;
  runner: ProcessRunner;
  ops: PrivilegedOps;
  clock: Clock;
  stateDir: string;
  vmsDir: string;
  log: (message: string) => void;
  kvmDevice?: string;
  /** What `PROGRAM --version` prints first; spawnSync when not given (tests pass their own). */
  versionLine?: (program: string) => string | null;
}


function foundOrNull(program: string): string | null {
  try {
    return findExecutable(program);
  } catch {
    return null;
  }
}


export function buildVmmDriver(o: VmmSetup): VmmDriver {
  const { vmm } = o.config;
  const kvmDevice = o.kvmDevice ?? '/dev/kvm';
  const qemu = new QemuDriver({ runner: o.runner, ops: o.ops, clock: o.clock, qemu: vmm.qemu, accel: vmm.accel, cacheFile: path.join(o.stateDir, 'accel-decisions.json'), log: o.log, kvmDevice });
  if (vmm.driver === 'qemu') return qemu;
  const found = foundOrNull(vmm.firecrackerBin);
  const firecracker = vmm.driver === 'firecracker' || found !== null
    ? new FirecrackerDriver({
      ops: o.ops, runner: o.runner, clock: o.clock, firecracker: vmm.firecrackerBin, jailer: vmm.jailerBin, kvmDevice, log: o.log,
      elfKernel: (kernel) => elfKernelOf(kernel, o.runner),
    })
    : null;
  if (firecracker && vmm.jailerBin === null) {
    o.log('Firecracker runs without the jailer (vmm.jailer_bin = ""): no chroot, cgroup limits or pid namespace; meant for development hosts');
  }
  const line = found ? (o.versionLine ?? ((program: string) => versionLineOf(program, 5_000)))(found) : null;
  const firecrackerVersion = line === null ? null : parseFirecrackerVersion(line);
  if (found && firecrackerVersion && isOlderVersion(firecrackerVersion, FIRECRACKER_MIN_VERSION)) {
    o.log(`Firecracker v${firecrackerVersion} (${found}) is older than ${FIRECRACKER_MIN_VERSION}, the oldest banger drives; auto picks QEMU`);
  }
  return new VmmRouter({
    qemu, firecracker, configured: vmm.driver, firecrackerBin: vmm.firecrackerBin, firecrackerFound: found, firecrackerVersion, kvmUsable: kvmDeviceUsable(kvmDevice),
    vmDir: (id) => path.join(o.vmsDir, id),
  });
}
