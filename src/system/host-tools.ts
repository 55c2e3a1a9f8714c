// The host programs banger runs, each with the Debian package that provides it: `banger doctor` checks them and
// `doctor --fix` installs what is missing, and a MISSING_TOOL error names the package to install.
import fs from 'node:fs';
import path from 'node:path';

export interface HostTool {
  /** The program (looked up on PATH), or an absolute path for a file that is not a program on PATH. */
  name: string;
  /** The Debian package that provides it. */
  pkg: string;
  /** What banger uses it for, as doctor says it. */
  usedFor: string;
  /** Needed only for some features: missing, it is a warning rather than a failure. */
  optional?: true;
  /** Programs that do the same job: any one of them present is enough. */
  alternatives?: readonly string[];
}

export const HOST_TOOLS: readonly HostTool[] = [
  { name: 'qemu-system-x86_64', pkg: 'qemu-system-x86', usedFor: 'the VMM' },
  { name: 'qemu-img', pkg: 'qemu-utils', usedFor: 'copy-on-write root disks' },
  { name: 'mkfs.ext4', pkg: 'e2fsprogs', usedFor: 'work disks and images' },
  { name: 'e2fsck', pkg: 'e2fsprogs', usedFor: 'checking disks before they grow' },
  { name: 'resize2fs', pkg: 'e2fsprogs', usedFor: 'growing work disks (vm set --disk)' },
  { name: 'debugfs', pkg: 'e2fsprogs', usedFor: 'image import and register' },
  { name: 'ip', pkg: 'iproute2', usedFor: 'the bridge, taps and network namespaces' },
  { name: 'setpriv', pkg: 'util-linux', usedFor: 'running tools as the owner' },
  { name: 'ssh', pkg: 'openssh-client', usedFor: 'vm ssh and workspaces' },
  { name: 'ssh-keygen', pkg: 'openssh-client', usedFor: 'VM keys' },
  { name: 'debootstrap', pkg: 'debootstrap', usedFor: 'building the default Debian image' },
  { name: 'gpgv', pkg: 'gpgv', usedFor: 'verifying what debootstrap downloads' },
  { name: '/usr/share/keyrings/debian-archive-keyring.gpg', pkg: 'debian-archive-keyring', usedFor: "Debian's archive keys for debootstrap" },
  { name: '/bin/busybox', pkg: 'busybox-static', usedFor: "the guest initrd's userland" },
  { name: 'nft', pkg: 'nftables', usedFor: 'keeping guests off other networks, and --nat', alternatives: ['iptables'] },
  { name: 'zstd', pkg: 'zstd', usedFor: 'catalog bundles and zstd layers' },
  { name: 'xz', pkg: 'xz-utils', usedFor: 'xz-compressed kernel modules' },
  { name: 'git', pkg: 'git', usedFor: 'shipping a checkout (vm run PATH, vm workspace)', optional: true },
];

/** Whether `tool` is here: an executable on `searchPath`, or the file itself for an absolute name. */
export function hostToolPresent(tool: HostTool, searchPath = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'): boolean {
  return [tool.name, ...(tool.alternatives ?? [])].some((name) => programPresent(name, searchPath));
}

function programPresent(name: string, searchPath: string): boolean {
  if (path.isAbsolute(name)) return fs.existsSync(name);
  // Root's PATH has the sbin directories; an owner's may not, and banger's helper runs the sbin tools as root.
  const dirs = new Set([...searchPath.split(':').filter(Boolean), '/usr/sbin', '/sbin', '/usr/bin', '/bin']);
  for (const dir of dirs) {
    try {
      fs.accessSync(path.join(dir, name), fs.constants.X_OK);
      return true;
    } catch {
      // Not in this directory.
    }
  }
  return false;
}

/** The Debian package that provides program `name` (its basename), or null when banger does not know it. */
export function packageOf(name: string): string | null {
  const base = path.basename(name);
  return HOST_TOOLS.find((t) => path.basename(t.name) === base)?.pkg ?? null;
}
