// The systemd units `banger system install` writes: bangerd-root.service (root, with the capabilities its
// operations need and no others) and bangerd.service (the owner). Both keep guests alive through a stop or a
// restart: KillMode=process ends only the daemon's own process (a VM's QEMU is another process of the same
// unit), SendSIGKILL=no never escalates to the rest, and RuntimeDirectoryPreserve=yes keeps /run/banger.

export interface UnitOwner {
  name: string;
  uid: number;
  gid: number;
  group: string;
  home: string;
}

export interface UnitSpec {
  /** PREFIX/current: the units run whatever release it points at, so an update swaps them. */
  current: string;
  owner: UnitOwner;
  /** bangerd-root's arguments (helperArgs) for this owner's directories and network. */
  helperArgs: string[];
  /** BANGER_HOME and BANGER_NETNS as the install ran with them, so the daemons use the same. */
  environment: Record<string, string>;
}

export const HELPER_UNIT = 'bangerd-root.service';
export const DAEMON_UNIT = 'bangerd.service';

/**
 * What bangerd-root's operations need: bridges, taps, netns and nftables (NET_ADMIN, NET_RAW for iptables, SYS_ADMIN
 * to enter a namespace and mount in an image build's chroot), switching to the owner for QEMU and the owner's
 * files (SETUID, SETGID), debootstrap and layer import (CHOWN, FOWNER, FSETID, DAC_*, MKNOD, SYS_CHROOT, SETFCAP
 * for file capabilities), and VMM processes of the owner's (KILL, SYS_PTRACE to read their /proc entries).
 */
export const HELPER_CAPABILITIES = [
  'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_SYS_ADMIN', 'CAP_SETUID', 'CAP_SETGID', 'CAP_CHOWN', 'CAP_FOWNER', 'CAP_FSETID',
  'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_MKNOD', 'CAP_SYS_CHROOT', 'CAP_SETFCAP', 'CAP_KILL', 'CAP_SYS_PTRACE',
] as const;

/** bangerd as root (an owner that is root, e.g. with guests in a network namespace): entering it and reading. */
const ROOT_DAEMON_CAPABILITIES = ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_CHOWN', 'CAP_FOWNER', 'CAP_KILL'] as const;

/** A value as systemd's command-line and Environment= parsing reads it: quoted when it has to be. */
function quoted(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `"${value.replace(/(["\\])/g, '\\$1').replace(/%/g, '%%')}"`;
}

function environmentLines(spec: UnitSpec, home: string): string[] {
  return Object.entries({ HOME: home, ...spec.environment }).map(([k, v]) => `Environment=${quoted(`${k}=${v}`)}`);
}

/** Directives both units share: what keeps guests running, and the hardening both can live with. */
const KEEP_GUESTS = ['KillMode=process', 'SendSIGKILL=no', 'RuntimeDirectory=banger', 'RuntimeDirectoryPreserve=yes', 'Restart=on-failure', 'RestartSec=1'];
const HARDENING = [
  'ProtectSystem=full', 'ProtectKernelModules=yes', 'ProtectKernelLogs=yes', 'ProtectClock=yes', 'ProtectHostname=yes',
  'RestrictRealtime=yes', 'LockPersonality=yes', 'SystemCallArchitectures=native', 'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6',
  'UMask=0077',
];

export function helperUnit(spec: UnitSpec): string {
  return [
    '# Written by banger system install; banger system uninstall removes it.',
    '[Unit]',
    `Description=banger privileged helper (bangerd-root) for ${spec.owner.name}`,
    `Documentation=file:${spec.current}/README.md`,
    `Before=${DAEMON_UNIT}`,
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${[`${spec.current}/bin/bangerd-root`, ...spec.helperArgs].map(quoted).join(' ')}`,
    ...environmentLines(spec, '/root'),
    ...KEEP_GUESTS,
    ...HARDENING,
    // Not NoNewPrivileges: setpriv runs QEMU as the owner, and debootstrap's dpkg runs setuid maintainer tools.
    `CapabilityBoundingSet=${HELPER_CAPABILITIES.join(' ')}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export function daemonUnit(spec: UnitSpec): string {
  const asRoot = spec.owner.uid === 0;
  return [
    '# Written by banger system install; banger system uninstall removes it.',
    '[Unit]',
    `Description=banger daemon (bangerd) for ${spec.owner.name}`,
    `Documentation=file:${spec.current}/README.md`,
    // Wants, not Requires: a restart of the helper must not restart bangerd (nor the other way round).
    `Wants=${HELPER_UNIT}`,
    `After=${HELPER_UNIT} network.target`,
    '',
    '[Service]',
    'Type=simple',
    `User=${spec.owner.name}`,
    `Group=${spec.owner.group}`,
    `ExecStart=${quoted(`${spec.current}/bin/bangerd`)} --foreground`,
    ...environmentLines(spec, spec.owner.home),
    ...KEEP_GUESTS,
    ...HARDENING,
    'NoNewPrivileges=yes',
    `CapabilityBoundingSet=${asRoot ? ROOT_DAEMON_CAPABILITIES.join(' ') : ''}`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
