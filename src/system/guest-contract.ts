// What the guest's initrd, the image and the VMM driver agree on: disk labels and the KVM probe's marker.
export const ROOT_LABEL = 'banger-root';
export const WORK_LABEL = 'banger-work';
export const PROBE_MARKER = 'BANGER_PROBE_OK';
/** Where the initrd mounts the work disk: root's home, and everything a VM keeps of its own. */
export const WORK_DISK_MOUNT = '/root';
/** The virtio-serial port name the guest agent looks for (agent/transport_serial.go). */
export const AGENT_PORT_NAME = 'dev.banger.agent.0';
/** The AF_VSOCK port the guest agent listens on where the VMM offers vsock (Firecracker). */
export const AGENT_VSOCK_PORT = 52;
/** The agent version this banger builds (agent/version.go says the same; a unit test holds them together). */
export const AGENT_VERSION = '0.1.0';
/** Where the initrd installs the agent in the guest's root, and its systemd unit. */
export const AGENT_GUEST_PATH = '/usr/local/libexec/banger-agent';
/** The per-VM writable disk of an overlay root (Firecracker): the image stays read-only underneath. */
export const UPPER_LABEL = 'banger-upper';
/** On the kernel command line: banger's /init assembles the root as an overlay (image + UPPER_LABEL disk). */
export const OVERLAY_CMDLINE_FLAG = 'banger.overlay=1';
/**
 * Beside a stored bzImage: the ELF vmlinux inside it, kept when it has a PVH entry point. QEMU boots it directly
 * (no real-mode setup, no decompression, which under emulation took about 3 s of every boot).
 */
export const PVH_KERNEL_FILE = 'vmlinux-pvh';
