// The VMM versions banger supports: the oldest it can drive and the newest it was tested with. `banger doctor`
// reports where the installed one stands.

/** QEMU's microvm machine with the options banger passes (virtio-mmio devices, -no-reboot, qmp over a socket). */
export const QEMU_MIN_VERSION = '7.0';
/** Debian 12's QEMU, which CI and the benchmarks run. */
export const QEMU_TESTED_VERSION = '7.2';

/** "7.2.22" from `qemu-system-x86_64 --version`'s "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)"; null when absent. */
export function parseQemuVersion(line: string): string | null {
  return /QEMU emulator version (\d+\.\d+(?:\.\d+)?)/.exec(line)?.[1] ?? null;
}

/**
 * Firecracker: 1.14 added `PUT /serial` (the guest console into a file), which banger uses; guest devices have
 * been found through ACPI since 1.8.
 */
export const FIRECRACKER_MIN_VERSION = '1.14.0';
/**
 * The API description banger's requests are built from and checked against (its swagger file, v1.16.1). No
 * real Firecracker has run banger's driver: it was tested against a fake that validates requests with that file.
 */
export const FIRECRACKER_TESTED_VERSION = '1.16.1';

/** "1.16.1" from `firecracker --version`'s "Firecracker v1.16.1"; null when absent. */
export function parseFirecrackerVersion(line: string): string | null {
  return /Firecracker v(\d+\.\d+\.\d+)/.exec(line)?.[1] ?? null;
}
