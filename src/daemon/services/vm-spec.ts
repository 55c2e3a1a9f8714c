// What a new VM will be: its validated size, and the line users see first.
import { BangerError } from '../../protocol/errors.ts';
import type { VmCreateParams } from '../../protocol/methods.ts';
import type { BangerConfig } from '../../system/config.ts';
import type { AccelChoice } from '../../vmm/driver.ts';
import { VM_NAME_PATTERN } from '../../protocol/daemon-schemas.ts';
import { VM_LIMITS, type Range } from '../../protocol/vm-limits.ts';

export interface VmSpec {
  name: string;
  image: string;
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  sshTimeoutSec: number | undefined;
}

/** The create request with config defaults applied; `name` is generated when not given. */
export function vmSpecOf(params: VmCreateParams, defaults: BangerConfig['vmDefaults'], generateName: () => string): VmSpec {
  const name = params.name ?? generateName();
  if (!VM_NAME_PATTERN.test(name)) {
    throw new BangerError('INVALID_ARGUMENT', `invalid VM name ${JSON.stringify(name)}`, { hint: 'use lowercase letters, digits and "-", starting with a letter or digit (at most 63)' });
  }
  return {
    name,
    image: params.image ?? defaults.image,
    vcpus: wholeNumber(params.vcpus ?? defaults.vcpus, VM_LIMITS.vcpus, 'vcpus', '--cpus'),
    memoryMib: wholeNumber(params.memoryMib ?? defaults.memoryMib, VM_LIMITS.memoryMib, 'memory (MiB)', '--memory'),
    diskGib: wholeNumber(params.diskGib ?? defaults.diskGib, VM_LIMITS.diskGib, 'disk (GiB)', '--disk'),
    sshTimeoutSec: validSshTimeout(params.sshTimeoutSec),
  };
}

/** Also checked here, not only by the RPC schema: the defaults come from config.toml and callers may be in-process. */
function wholeNumber(value: unknown, { min, max }: Range, what: string, flag: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new BangerError('INVALID_ARGUMENT', `${what} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`, {
      hint: `pass ${flag} with a value from ${min} to ${max}`,
    });
  }
  return value;
}

/** Seconds to wait for sshd, when given. */
export function validSshTimeout(value: unknown): number | undefined {
  return value === undefined ? undefined : wholeNumber(value, VM_LIMITS.sshTimeoutSec, 'ssh timeout (seconds)', '--ssh-timeout');
}

/** How the accelerator shows in the spec line: the decision and why, or that it is being made alongside. */
export function accelText(driver: string, choice: AccelChoice | null): string {
  return choice ? `${choice.vmm ?? driver}/${choice.accel} (${choice.reason})` : `${driver} (KVM or TCG: probing KVM alongside the set-up, once per host boot)`;
}

/** The line users see first: what they are about to get. */
export function specLine(s: { name: string; vcpus: number; memoryMib: number; diskGib: number; image: string; nat?: boolean; accel: string }): string {
  return `${s.name}: ${s.vcpus} vCPU, ${s.memoryMib} MiB RAM, ${s.diskGib} GiB disk, image ${s.image}${s.nat ? ', NAT' : ''}, ${s.accel}`;
}
