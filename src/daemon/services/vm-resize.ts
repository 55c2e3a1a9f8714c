// vm set: what a stopped VM's new size will be, and growing its work disk to match.
import fs from 'node:fs';
import { BangerError } from '../../protocol/errors.ts';
import type { VmInfo, VmSetParams } from '../../protocol/methods.ts';
import { VM_LIMITS, type Range } from '../../protocol/vm-limits.ts';
import { lastLines, runChecked, type ProcessRunner } from '../../system/process.ts';

export type VmSizeChange = Partial<Pick<VmInfo, 'vcpus' | 'memoryMib' | 'diskGib'>>;

/** The fields that change (an empty object when nothing does); refuses a shrinking disk and sizes out of range. */
export function planVmSet(vm: VmInfo, params: Omit<VmSetParams, 'ref'>): VmSizeChange {
  if (params.vcpus === undefined && params.memoryMib === undefined && params.diskGib === undefined) {
    throw new BangerError('INVALID_ARGUMENT', 'vm set needs --cpus, --memory or --disk', { hint: `e.g. banger vm set ${vm.name} --cpus 2 --memory 4G --disk 16` });
  }
  const change: VmSizeChange = {};
  if (params.vcpus !== undefined && params.vcpus !== vm.vcpus) change.vcpus = inRange(params.vcpus, VM_LIMITS.vcpus, '--cpus');
  if (params.memoryMib !== undefined && params.memoryMib !== vm.memoryMib) change.memoryMib = inRange(params.memoryMib, VM_LIMITS.memoryMib, '--memory (MiB)');
  if (params.diskGib !== undefined && params.diskGib !== vm.diskGib) {
    if (params.diskGib < vm.diskGib) {
      throw new BangerError('INVALID_ARGUMENT', `the work disk of VM ${vm.name} is ${vm.diskGib} GiB and only grows (asked for ${params.diskGib} GiB)`, {
        hint: `give --disk ${vm.diskGib} or more; for a smaller disk, create a new VM: banger vm create --disk ${params.diskGib}`,
      });
    }
    change.diskGib = inRange(params.diskGib, VM_LIMITS.diskGib, '--disk (GiB)');
  }
  return change;
}

function inRange(value: number, { min, max }: Range, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new BangerError('INVALID_ARGUMENT', `${what} must be a whole number from ${min} to ${max} (got ${value})`, { hint: `give ${what.split(' ')[0]} a value from ${min} to ${max}` });
  }
  return value;
}

/**
 * Grows a raw ext4 work disk to `gib`: the file first (sparse, so it costs nothing until written), then the
 * filesystem. resize2fs wants a freshly checked filesystem, so e2fsck runs first. The VMM must not run. If a
 * step fails the file may already be larger; running this again finishes the job.
 */
export async function growWorkDisk(o: { runner: ProcessRunner; file: string; gib: number; signal?: AbortSignal }): Promise<void> {
  const bytes = o.gib * 1024 ** 3;
  if (fs.statSync(o.file).size > bytes) throw new Error(`work disk ${o.file} is larger than ${o.gib} GiB; it only grows`);
  // -p repairs only what is safe without asking; exit 1 means it fixed something, which is fine here.
  const fsck = await o.runner.run('e2fsck', ['-f', '-p', o.file], o.signal ? { signal: o.signal } : {});
  if (fsck.code !== 0 && fsck.code !== 1) {
    throw new BangerError('TOOL_FAILED', `e2fsck -f -p ${o.file} failed (exit status ${fsck.code}): ${lastLines(fsck.stderr || fsck.stdout, 5)}`, {
      hint: `the work disk needs a manual check: e2fsck -f ${o.file}; e2fsck comes from apt-get install e2fsprogs`,
    });
  }
  fs.truncateSync(o.file, bytes);
  await runChecked(o.runner, 'resize2fs', [o.file], {
    ...(o.signal ? { signal: o.signal } : {}),
    hint: `resize2fs comes from apt-get install e2fsprogs; rerun the same vm set to finish growing the disk`,
  });
}
