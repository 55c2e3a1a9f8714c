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
