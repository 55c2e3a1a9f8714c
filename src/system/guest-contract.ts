// What the guest's initrd, the image and the VMM driver agree on: disk labels and the KVM probe's marker.
export const ROOT_LABEL = 'banger-root';
export const WORK_LABEL = 'banger-work';
export const PROBE_MARKER = 'BANGER_PROBE_OK';
/** Where the initrd mounts the work disk: root's home, and everything a VM keeps of its own. */
export const WORK_DISK_MOUNT = '/root';
