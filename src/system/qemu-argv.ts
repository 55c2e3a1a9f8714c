// The one place a QEMU command line is built. bangerd-root calls this after validating the spec, so no
// argument ever comes from a caller as a raw string.
import type { QemuLaunchSpec } from '../protocol/privileged-ops.ts';
import { AGENT_PORT_NAME } from './guest-contract.ts';

export function qemuProcessName(vmId: string): string {
  return `banger-${vmId}`;
}

/**
 * TCG's translation cache in MiB. QEMU's default (1 GiB) is only a ceiling, but a guest fills it as it runs new code
 * and never gives it back: an idle default-image VM held 208 MiB of it after boot, and more after work. At 128 MiB
 * an idle VM's QEMU was 418 MiB resident instead of 516, with boot and a git/tar workload as fast within the
 * noise of a shared host; at 64 MiB the same workload took about twice as long (the cache thrashed).
 */
export const TCG_TB_MIB = 128;

export function buildQemuArgv(spec: QemuLaunchSpec): string[] {
  const argv = [
    '-name', `${qemuProcessName(spec.vmId)},process=${qemuProcessName(spec.vmId).slice(0, 15)}`,
    '-M', 'microvm,rtc=on',
    '-accel', spec.accel === 'tcg' ? `tcg,tb-size=${TCG_TB_MIB}` : spec.accel,
    ...(spec.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-smp', String(spec.vcpus),
    '-m', `${spec.memoryMib}M`,
    '-kernel', spec.kernelPath,
    '-initrd', spec.initrdPath,
    '-append', spec.cmdline,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-serial', `file:${spec.serialLog}`,
    '-qmp', `unix:${spec.qmpSocket},server=on,wait=off`,
    '-pidfile', spec.pidFile,
    '-daemonize',
  ];
  // The guest agent's port: virtio-serial works on every host (no vhost-vsock needed). Port 0 is reserved for a
  // console; the agent finds its port by this name under /sys/class/virtio-ports.
  argv.push('-chardev', `socket,id=agent0,path=${spec.agentSocket},server=on,wait=off`);
  argv.push('-device', 'virtio-serial-device,max_ports=2');
  argv.push('-device', `virtserialport,id=agentport,chardev=agent0,name=${AGENT_PORT_NAME},nr=1`);
  // Free page reporting: pages the guest frees go back to the host instead of staying in QEMU's resident memory.
  // The balloon is never inflated; the guest keeps all of its memory.
  argv.push('-device', 'virtio-balloon-device,free-page-reporting=on');
  // Entropy from the host (QEMU's built-in backend): the guest's random generator is ready as soon as the driver
  // loads, instead of seconds into boot, and sshd no longer waits for it.
  argv.push('-device', 'virtio-rng-device');
  for (const disk of spec.disks) {
    argv.push('-drive', `id=${disk.id},file=${disk.path},format=${disk.format},if=none,discard=unmap`);
    argv.push('-device', `virtio-blk-device,drive=${disk.id}`);
  }
  if (spec.net) {
    argv.push('-netdev', `tap,id=net0,ifname=${spec.net.tap},script=no,downscript=no`);
    argv.push('-device', `virtio-net-device,netdev=net0,mac=${spec.net.mac}`);
  }
  return argv;
}

/** Kernel command line for a banger guest; tscKhz avoids a TSC calibration hang under TCG. */
export function guestCmdline(options: { accel: 'kvm' | 'tcg'; tscKhz: number | null; probe?: boolean }): string {
  // loglevel=4: the kernel's info messages cost seconds on an emulated serial port; warnings still show.
  // The KVM probe wants the whole boot log instead: output that stops is how a hung guest shows.
  // transparent_hugepage=madvise: with Debian's default (always) every small process's heap is backed by 2 MiB
  // pages (the guest agent's 2 MiB of heap became 8 MiB resident); programs that want huge pages still get
  // them by asking (madvise), as on most distributions.
  const parts = ['console=ttyS0', options.probe ? 'loglevel=7' : 'loglevel=4', 'reboot=t', 'panic=-1', 'net.ifnames=0', 'i8042.noaux', 'i8042.nomux', 'i8042.dumbkbd', 'transparent_hugepage=madvise'];
  // Under TCG the guest's TSC is the host's, read at the frequency given here, so it keeps time. Without
  // tsc=reliable the kernel's clocksource watchdog compares it with timer ticks, which arrive late on a loaded
  // host, declares the TSC unstable and falls back to jiffies (seen here one boot in a few): the guest clock then
  // loses the ticks it missed and every clock read is coarser and slower.
  if (options.accel === 'tcg' && options.tscKhz) parts.push(`tsc_early_khz=${options.tscKhz}`, 'tsc=reliable');
  if (options.probe) parts.push('earlyprintk=ttyS0', 'banger.probe=1');
  return parts.join(' ');
}
