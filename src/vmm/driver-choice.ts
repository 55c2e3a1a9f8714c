// Which VMM runs new VMs, and why (for the spec line): `[vmm] driver` in config.toml, or for "auto" Firecracker
// when its binary is here and KVM runs a guest (the QEMU accelerator probe's verdict), else QEMU.
import type { VmmDriverChoice } from '../system/config.ts';
import { FIRECRACKER_MIN_VERSION } from '../protocol/vmm-versions.ts';
import { isOlderVersion } from '../protocol/versions.ts';

export type DriverName = 'firecracker' | 'qemu';

export interface DriverChoice {
  driver: DriverName;
  reason: string;
}

export interface DriverChoiceInput {
  configured: VmmDriverChoice;
  /** vmm.firecracker_bin as configured, and where it was found (null: not found). */
  firecrackerBin: string;
  firecrackerFound: string | null;
  /** Whether /dev/kvm can be opened. */
  kvmUsable: boolean;
  /** Whether KVM runs a guest here (the accelerator decision), with its reason; null while not decided yet. */
  kvmVerdict: { runs: boolean; reason: string } | null;
  /** What `firecracker --version` said ("1.16.1"); null or absent when it could not be asked. */
  firecrackerVersion?: string | null;
}

/** ", Firecracker v1.16.1" for the spec line, or what is known of it. */
function versionNote(i: DriverChoiceInput): string {
  return i.firecrackerVersion ? `Firecracker v${i.firecrackerVersion}` : 'Firecracker (its --version said nothing banger reads)';
}

/** The choice, or null when it waits for the KVM verdict (auto, Firecracker present, /dev/kvm usable). */
export function chooseDriver(i: DriverChoiceInput): DriverChoice | null {
  switch (i.configured) {
    case 'qemu':
      return { driver: 'qemu', reason: 'vmm.driver = "qemu" in config' };
    case 'firecracker':
      return { driver: 'firecracker', reason: `vmm.driver = "firecracker" in config; ${versionNote(i)}` };
    case 'auto':
      if (i.firecrackerFound === null) return { driver: 'qemu', reason: `auto: no Firecracker binary (vmm.firecracker_bin = "${i.firecrackerBin}")` };
      if (!i.kvmUsable) return { driver: 'qemu', reason: `auto: Firecracker needs KVM, and /dev/kvm is not usable` };
      if (i.firecrackerVersion && isOlderVersion(i.firecrackerVersion, FIRECRACKER_MIN_VERSION)) {
        return { driver: 'qemu', reason: `auto: Firecracker v${i.firecrackerVersion} is older than ${FIRECRACKER_MIN_VERSION}, the oldest banger drives` };
      }
      if (i.kvmVerdict === null) return null;
      return i.kvmVerdict.runs
        ? { driver: 'firecracker', reason: `auto: ${i.firecrackerFound} (${versionNote(i)}) is here and KVM runs guests` }
        : { driver: 'qemu', reason: `auto: Firecracker is here but KVM cannot run a guest (${i.kvmVerdict.reason})` };
  }
}
