// The sizes a VM may have, in one place: the RPC schemas, config.toml's schema and the VM service all check
// against these, so the three cannot drift apart.

export interface Range {
  min: number;
  max: number;
}

export const VM_LIMITS = {
  vcpus: { min: 1, max: 64 },
  memoryMib: { min: 128, max: 1024 * 1024 },
  diskGib: { min: 1, max: 16 * 1024 },
  sshTimeoutSec: { min: 1, max: 3600 },
} as const satisfies Record<string, Range>;
