// A small initrd for a distro kernel whose virtio and ext4 drivers are modules: busybox, just the modules a
// guest needs, and an /init that mounts the disks by label, applies the VM's configuration and switch_roots.
// Debian's own initrd works too but takes minutes under software emulation; this one takes about a second.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { BangerError } from '../protocol/errors.ts';
import type { ProcessRunner } from '../system/process.ts';
import { runChecked } from '../system/process.ts';
import { AGENT_GUEST_PATH, OVERLAY_CMDLINE_FLAG, PROBE_MARKER, ROOT_LABEL, UPPER_LABEL, WORK_LABEL } from '../system/guest-contract.ts';
import type { ImageBoot } from '../protocol/image-types.ts';
import { S_IFCHR, S_IFDIR, S_IFREG, writeCpio, type CpioEntry } from './cpio.ts';

/** Modules the guest needs, by name; their dependencies come from modules.dep. */
export const GUEST_MODULES = ['crc32c_generic', 'ext4', 'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_console', 'vmw_vsock_virtio_transport'];
/**
 * Modules loaded when the kernel has them; a guest boots without them, only slower or larger. virtio_rng seeds the
 * kernel's random generator from the host before init starts: an emulated CPU without RDRAND otherwise took until
 * ~4.3 s of uptime to gather entropy, and sshd waits for it. virtio_balloon reports the guest's free pages to
 * QEMU, which gives them back to the host (free-page-reporting).
 */
export const OPTIONAL_GUEST_MODULES = ['virtio_rng', 'virtio_balloon'];


/**
 * Loaded when the kernel has it, for an overlay root (Firecracker's disks); a kernel without it still boots VMs
 * with a whole root disk (QEMU's qcow2 overlay).
 */
export const OVERLAY_MODULES = ['overlay'];

/**
 * The root filesystem onto /newroot: the root disk itself, or with banger.overlay=1 on the kernel command line
 * (Firecracker, which takes only raw disks) an overlay of the image, read-only and shared by every VM made from
 * it, under this VM's own writable disk.
 */
export const MOUNT_ROOT_SECTION = `case " $(cat /proc/cmdline) " in
*" ${OVERLAY_CMDLINE_FLAG} "*)
  i=0
  until upper=$(findfs LABEL=${UPPER_LABEL} 2>/dev/null); do
    i=$((i + 1)); [ $i -gt 400 ] && fail "the overlay disk labelled ${UPPER_LABEL} did not appear"
    usleep 25000
  done
  mkdir -p /lower /upper
  mount -t ext4 -o ro "$root" /lower || fail "cannot mount the image $root"
  mount -t ext4 "$upper" /upper || fail "cannot mount the overlay disk $upper"
  mkdir -p /upper/upper /upper/work
  mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot || fail "cannot assemble the overlay root (is overlay in this kernel?)"
  ;;
*) mount -t ext4 "$root" /newroot || fail "cannot mount the root filesystem $root" ;;
esac`;

const AGENT_PATH = AGENT_GUEST_PATH;
const AGENT_DIR = path.dirname(AGENT_GUEST_PATH);

/**
 * The agent's unit. No default dependencies: it needs only the root and work disks, which the initrd mounted,
 * so it answers long before sshd. It stops last at shutdown, so a poweroff request can still be answered. Its
 * CPU weight (default 100) lets it, and the commands it runs for vm exec, go before background services: at boot
 * banger waits for it while the rest of the system starts on the same vCPU.
 */
export const AGENT_UNIT = `[Unit]
Description=banger guest agent
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStart=${AGENT_GUEST_PATH}
Restart=always
RestartSec=1
KillMode=mixed
CPUWeight=1000

[Install]
WantedBy=sysinit.target
`;

export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "banger-init: $*"; sleep 1; poweroff -f; }
for m in $(cat /etc/banger-modules); do insmod "/lib/modules/$m" || echo "banger-init: could not load $m"; done
# A kernel registered with its own initrd: that initrd came first and brought its modules and modules.dep
# (under /usr/lib on a merged-/usr distribution, whose /lib link this initrd's /lib replaced).
v=$(uname -r)
if [ -z "$(cat /etc/banger-modules)" ]; then
  for d in /lib/modules/$v /usr/lib/modules/$v; do
    [ -f "$d/modules.dep" ] || continue
    [ -e /lib/modules/$v ] || ln -s "$d" /lib/modules/$v
    for m in ${[...GUEST_MODULES, ...OPTIONAL_GUEST_MODULES, ...OVERLAY_MODULES].join(' ')}; do modprobe "$m" 2>/dev/null; done
    break
  done
fi
case " $(cat /proc/cmdline) " in *" banger.probe=1 "*) echo ${PROBE_MARKER}; poweroff -f ;; esac
[ -f /banger/vm.env ] || fail "no VM configuration in the initrd"
. /banger/vm.env
i=0
until root=$(findfs LABEL=${ROOT_LABEL} 2>/dev/null) && work=$(findfs LABEL=${WORK_LABEL} 2>/dev/null); do
  i=$((i + 1)); [ $i -gt 400 ] && fail "disks labelled ${ROOT_LABEL} and ${WORK_LABEL} did not appear"
  usleep 25000
done
${MOUNT_ROOT_SECTION}
mkdir -p /newroot/root
mount -t ext4 "$work" /newroot/root || fail "cannot mount the work disk $work"
if [ "$BANGER_BOOT" = agent ]; then
  # An image without systemd (most container images): banger's agent is PID 1. Container leftovers go, the
  # mount points it needs are made, and DNS comes from the host when the image has no resolv.conf of its own.
  mkdir -p /newroot/dev /newroot/proc /newroot/sys /newroot/run /newroot/tmp /newroot/etc
  rm -f /newroot/.dockerenv /newroot/run/.containerenv
  if [ ! -s /newroot/etc/resolv.conf ] && [ -n "$BANGER_DNS" ]; then
    rm -f /newroot/etc/resolv.conf
    for ns in $BANGER_DNS; do echo "nameserver $ns"; done > /newroot/etc/resolv.conf
  fi
  hostname "$BANGER_HOSTNAME"
fi
if [ ! -e /newroot/root/.banger-seeded ]; then
  cp -a /newroot/etc/skel/. /newroot/root/ 2>/dev/null
  : > /newroot/root/.banger-seeded
fi
chmod 700 /newroot/root
mkdir -p /newroot/root/.ssh
chmod 700 /newroot/root/.ssh
cp /banger/authorized_keys /newroot/root/.ssh/authorized_keys || fail "cannot install banger's ssh key"
chmod 600 /newroot/root/.ssh/authorized_keys
mkdir -p /newroot/etc/ssh
cp /banger/ssh_host_ed25519_key /banger/ssh_host_ed25519_key.pub /newroot/etc/ssh/ || fail "cannot install the VM's ssh host key"
chmod 600 /newroot/etc/ssh/ssh_host_ed25519_key
if [ -f /banger/agent ]; then
  # The guest agent of the banger that made this VM, installed on every boot: started by systemd at sysinit,
  # or PID 1 itself in an image without systemd.
  mkdir -p /newroot${AGENT_DIR}
  cp /banger/agent /newroot${AGENT_PATH} && chmod 755 /newroot${AGENT_PATH} || fail "cannot install the guest agent"
  if [ "$BANGER_BOOT" != agent ]; then
    mkdir -p /newroot/etc/systemd/system/sysinit.target.wants
    cp /banger/banger-agent.service /newroot/etc/systemd/system/banger-agent.service
    ln -sf ../banger-agent.service /newroot/etc/systemd/system/sysinit.target.wants/banger-agent.service
  fi
fi
echo "$BANGER_HOSTNAME" > /newroot/etc/hostname
printf '127.0.0.1 localhost\\n127.0.1.1 %s\\n::1 localhost ip6-localhost ip6-loopback\\n' "$BANGER_HOSTNAME" > /newroot/etc/hosts
echo "$BANGER_MACHINE_ID" > /newroot/etc/machine-id
ip link set lo up
ip addr add "$BANGER_IP/$BANGER_PREFIX" dev eth0 || fail "cannot configure eth0"
ip link set eth0 up || fail "cannot bring eth0 up"
ip route add default via "$BANGER_GATEWAY" || fail "cannot add the default route via $BANGER_GATEWAY"
umount /proc /sys
mount --move /dev /newroot/dev
if [ "$BANGER_BOOT" = agent ]; then
  [ -x /newroot${AGENT_PATH} ] || fail "the image has no init and banger's agent is missing"
  echo "banger-init: $BANGER_HOSTNAME at $BANGER_IP, starting banger's agent as init"
  exec switch_root /newroot ${AGENT_PATH} --init
fi
echo "banger-init: $BANGER_HOSTNAME at $BANGER_IP, starting /sbin/init"
exec switch_root /newroot /sbin/init
`;

/** Reads modules.dep and returns module files (relative to the modules dir) in a loadable order. */
export function resolveModules(modulesDep: string, builtin: ReadonlySet<string>, wanted: readonly string[]): string[] {
  const deps = new Map<string, string[]>();
  const byName = new Map<string, string>();
  for (const line of modulesDep.split('\n')) {
    const [file, rest] = line.split(':');
    if (!file || rest === undefined) continue;
    deps.set(file, rest.trim() === '' ? [] : rest.trim().split(/\s+/));
    byName.set(moduleName(file), file);
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const dep of deps.get(file) ?? []) visit(dep);
    order.push(file);
  };
  for (const name of wanted) {
    const file = byName.get(name);
    if (file) visit(file);
    else if (!builtin.has(name)) {
      throw new BangerError('KERNEL_NOT_FOUND', `kernel module ${name} is neither built in nor in modules.dep`, { hint: 'use a kernel with virtio and ext4 support' });
    }
  }
  return order;
}

/** Like resolveModules for modules a guest can do without: those the kernel lacks are left out. */
function optionalModules(modulesDep: string, builtin: ReadonlySet<string>, wanted: readonly string[], modulesDir: string): string[] {
  return wanted.flatMap((name) => {
    try {
      const files = resolveModules(modulesDep, builtin, [name]);
      // A kernel's modules.dep may name a module its directory does not carry (a bundle or an import with only
      // the modules a guest needs): then the kernel goes without it, as it would without the module at all.
      return files.every((f) => fs.existsSync(path.join(modulesDir, f))) ? files : [];
    } catch (err) {
      if (err instanceof BangerError && err.code === 'KERNEL_NOT_FOUND') return [];
      throw err;
    }
  });
}

export function moduleName(file: string): string {
  return path.basename(file).replace(/\.ko(\.(xz|zst|gz))?$/, '').replace(/-/g, '_');
}

/** Builds the shared part of the initrd for one kernel version. */
export async function buildBaseInitrd(options: { runner: ProcessRunner; modulesDir: string | null; busybox: string }): Promise<Buffer> {
  const { runner, modulesDir, busybox } = options;
  // A kernel without modules (a Firecracker-style vmlinux) has what a guest needs built in.
  let files: string[] = [];
  if (modulesDir !== null) {
    const dep = fs.readFileSync(path.join(modulesDir, 'modules.dep'), 'utf8');
    let builtinText = '';
    try {
      builtinText = fs.readFileSync(path.join(modulesDir, 'modules.builtin'), 'utf8');
    } catch {
      // Kernels without modules.builtin simply have nothing built in that we look for.
    }
    const builtin = new Set(builtinText.split('\n').filter(Boolean).map(moduleName));
    files = resolveModules(dep, builtin, GUEST_MODULES);
    for (const file of optionalModules(dep, builtin, [...OPTIONAL_GUEST_MODULES, ...OVERLAY_MODULES], modulesDir)) if (!files.includes(file)) files.push(file);
  }
  const dirs = ['bin', 'dev', 'proc', 'sys', 'newroot', 'etc', 'lib', 'lib/modules', 'banger', 'tmp'];
  const entries: CpioEntry[] = dirs.map((d) => ({ path: d, mode: S_IFDIR | 0o755 }));
  entries.push({ path: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
  entries.push({ path: 'bin/busybox', mode: S_IFREG | 0o755, data: fs.readFileSync(busybox) });
  entries.push({ path: 'init', mode: S_IFREG | 0o755, data: Buffer.from(INIT_SCRIPT) });
  const names: string[] = [];
  for (const file of files) {
    const name = `${moduleName(file)}.ko`;
    names.push(name);
    entries.push({ path: `lib/modules/${name}`, mode: S_IFREG | 0o644, data: await readModule(runner, path.join(modulesDir!, file)) });
  }
  entries.push({ path: 'etc/banger-modules', mode: S_IFREG | 0o644, data: Buffer.from(`${names.join('\n')}\n`) });
  // Uncompressed: QEMU loads the extra megabytes at host speed, while the kernel's gunzip runs emulated (about
  // 0.1 s saved per boot under TCG, measured by booting both into the probe).
  const archive = writeCpio(entries);
  // The kernel takes a second archive after this one only if it starts 4-byte aligned; zero padding is skipped.
  return Buffer.concat([archive, Buffer.alloc((512 - (archive.length % 512)) % 512)]);
}

/** A module's bytes, uncompressed: busybox insmod hands them to init_module(), which wants an ELF object. */
export async function readModule(runner: ProcessRunner, file: string): Promise<Buffer> {
  let data: Buffer;
  if (file.endsWith('.ko')) data = fs.readFileSync(file);
  else {
    const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : 'gzip';
    // The exit status of a pipeline is base64's, so a failed decompression shows only as output that is not ELF.
    const result = await runChecked(runner, 'sh', ['-c', `${tool} -dc < "$1" | base64 -w0`, 'sh', file]);
    data = Buffer.from(result.stdout, 'base64');
  }
  if (!data.subarray(0, 4).equals(ELF_MAGIC)) {
    throw new BangerError('KERNEL_NOT_FOUND', `kernel module ${file} did not decompress to an ELF object`, {
      hint: 'check that xz-utils and zstd are installed (apt-get install xz-utils zstd) and that the kernel package is intact',
    });
  }
  return data;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/**
 * Changes whenever what goes into the base initrd changes (its /init, the module list), so kernels imported
 * by an older banger get a fresh initrd instead of the stale one.
 */
export const INITRD_REVISION = createHash('sha256').update(JSON.stringify({ INIT_SCRIPT, GUEST_MODULES, OPTIONAL_GUEST_MODULES, OVERLAY_MODULES, layout: 3 })).digest('hex').slice(0, 8);

export interface VmBootConfig {
  hostname: string;
  ip: string;
  prefix: number;
  gateway: string;
  machineId: string;
  authorizedKeys: string;
  hostKey: string;
  hostKeyPub: string;
  /** The guest agent binary, installed into the root filesystem at each boot. */
  agent?: Buffer;
  /** What PID 1 is: the image's systemd, or banger's agent (images without systemd); systemd by default. */
  boot?: ImageBoot;
  /** Nameservers for an image that brings no resolv.conf of its own (agent boots only). */
  dns?: string[];
}

/** The per-VM part, appended to the base initrd as a second (uncompressed) archive. */
export function buildVmConfigArchive(config: VmBootConfig): Buffer {
  const env = [
    `BANGER_HOSTNAME='${config.hostname}'`,
    `BANGER_IP='${config.ip}'`,
    `BANGER_PREFIX='${config.prefix}'`,
    `BANGER_GATEWAY='${config.gateway}'`,
    `BANGER_MACHINE_ID='${config.machineId}'`,
    `BANGER_BOOT='${config.boot ?? 'systemd'}'`,
    `BANGER_DNS='${(config.dns ?? []).join(' ')}'`,
  ].join('\n');
  for (const value of [config.hostname, config.ip, config.gateway, config.machineId, config.boot ?? 'systemd', ...(config.dns ?? [])]) {
    if (!/^[a-zA-Z0-9.:-]+$/.test(value)) throw new Error(`unsafe value in VM boot config: ${value}`);
  }
  return writeCpio([
    { path: 'banger', mode: S_IFDIR | 0o700 },
    { path: 'banger/vm.env', mode: S_IFREG | 0o600, data: Buffer.from(`${env}\n`) },
    { path: 'banger/authorized_keys', mode: S_IFREG | 0o600, data: Buffer.from(config.authorizedKeys) },
    { path: 'banger/ssh_host_ed25519_key', mode: S_IFREG | 0o600, data: Buffer.from(config.hostKey) },
    { path: 'banger/ssh_host_ed25519_key.pub', mode: S_IFREG | 0o644, data: Buffer.from(config.hostKeyPub) },
    ...(config.agent
      ? [
        { path: 'banger/agent', mode: S_IFREG | 0o755, data: config.agent },
        { path: 'banger/banger-agent.service', mode: S_IFREG | 0o644, data: Buffer.from(AGENT_UNIT) },
      ]
      : []),
  ]);
}
