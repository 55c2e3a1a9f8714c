// Whether the KVM device can be used: QEMU and Firecracker both open it for reading and writing.
import fs from 'node:fs';

export const KVM_DEVICE = '/dev/kvm';

/** Whether this process may open `device` for reading and writing (it says nothing of whether a guest runs on it). */
export function kvmDeviceUsable(device: string = KVM_DEVICE): boolean {
  try {
    fs.accessSync(device, fs.constants.R_OK | fs.constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
