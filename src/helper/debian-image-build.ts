// Builds a built-in image: Debian from Debian's archive with debootstrap, tuned to boot fast as a banger guest,
// packed into an ext4 file. Runs inside bangerd-root (debootstrap and mkfs need root).
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { ProgressEvent } from '../protocol/jsonrpc.ts';
import type { ProcessRunner } from '../system/process.ts';
import { lastLines } from '../system/process.ts';
import { ROOT_LABEL } from '../system/guest-contract.ts';
import type { DebianRecipe } from '../protocol/image-recipes.ts';
import type { Owner } from '../system/as-owner.ts';
import { handOver, makeBuildDir, removeBuildDir, writeExt4 } from './ext4-image.ts';
import { findGuestTools, installGuestTools } from './guest-tools.ts';

const SSHD_CONFIG = `# Written by banger: keys only, one host key injected per VM at boot.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
`;

// Units that only cost boot time in a sandbox (under emulation every process start costs a good fraction of a
// second): periodic maintenance, a VGA getty there is no screen for, users that the image already has
// (sysusers), a root the initrd already mounted read-write (remount-fs), utmp records, debug/tracing/hugepage
// mounts, and the random seed (one file baked into the image would be the same in every VM).
const MASKED_UNITS = [
  'apt-daily.timer', 'apt-daily-upgrade.timer', 'e2scrub_all.timer', 'e2scrub_reap.service', 'fstrim.timer',
  'getty@tty1.service', 'getty-static.service', 'systemd-networkd-wait-online.service',
  'systemd-sysusers.service', 'systemd-remount-fs.service', 'systemd-update-utmp.service', 'systemd-update-utmp-runlevel.service',
  'dev-hugepages.mount', 'sys-kernel-debug.mount', 'sys-kernel-tracing.mount', 'sys-kernel-config.mount', 'sys-fs-fuse-connections.mount',
  'systemd-random-seed.service',
  // Kernel modules for loop devices, device-mapper and EFI pstore, loaded at every boot in case something wants
  // them; the kernel still loads loop and dm_mod on first use of /dev/loop-control or /dev/mapper/control.
  ...['loop', 'dm_mod', 'efi_pstore'].map((module) => `modprobe@${module}.service`),
];

// Generators run before any unit starts, one process each (about 70 ms apiece under emulation). These serve what a
// banger VM never has or never gets: encrypted, verity or integrity volumes, GPT partition discovery, hibernation,
// offline updates, and units requested on a kernel command line that banger writes. fstab, getty, sysv and
// rc-local stay: a user's own fstab lines, init scripts and rc.local keep working.
const MASKED_GENERATORS = [
  'systemd-cryptsetup-generator', 'systemd-veritysetup-generator', 'systemd-integritysetup-generator',
  'systemd-gpt-auto-generator', 'systemd-hibernate-resume-generator', 'systemd-system-update-generator',
  'systemd-debug-generator', 'systemd-run-generator',
];

// sshd needs nothing that basic.target brings: the initrd mounted the disks, configured eth0 and put the host key
// in place, and the unit makes its own /run/sshd. So it starts with the first units instead of after sysinit
// (journald, tmpfiles, udev) and basic.target; its check of the configuration banger wrote is skipped too. On one
// emulated vCPU everything else that boots competes with it: a tenfold CPU weight (default 100) lets sshd and
// the first logins go first. Sessions stay in ssh.service's cgroup (there is no logind), so the commands a user
// runs keep that weight over background services after boot too, as the agent's do (see AGENT_UNIT).
const SSH_DROP_IN = `[Unit]
DefaultDependencies=no
After=systemd-journald.socket
Conflicts=shutdown.target
Before=shutdown.target

[Service]
ExecStartPre=
CPUWeight=1000
`;

/** Makes a debootstrapped tree ready to boot as a banger guest. */
export function customizeRootfs(root: string): void {
  const write = (rel: string, text: string, mode = 0o644): void => {
    const file = path.join(root, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text, { mode });
  };
  write('etc/hostname', 'banger\n');
  write('etc/fstab', `LABEL=${ROOT_LABEL} / ext4 defaults,noatime 0 0\n`);
  write('etc/ssh/sshd_config.d/banger.conf', SSHD_CONFIG);
  write('etc/systemd/system/ssh.service.d/banger.conf', SSH_DROP_IN);
  fs.rmSync(path.join(root, 'var/lib/systemd/random-seed'), { force: true });
  // The journal stays in memory: flushing it to disk sits on the boot's critical path.
  write('etc/systemd/journald.conf.d/banger.conf', '[Journal]\nStorage=volatile\n');
  // Each VM gets its own machine id and host key from its initrd; none may be baked into the image.
  write('etc/machine-id', '');
  for (const name of fs.readdirSync(path.join(root, 'etc/ssh'))) {
    if (name.startsWith('ssh_host_')) fs.rmSync(path.join(root, 'etc/ssh', name));
  }
  for (const unit of MASKED_UNITS) {
    const link = path.join(root, 'etc/systemd/system', unit);
    fs.rmSync(link, { force: true });
    fs.symlinkSync('/dev/null', link);
  }
  for (const generator of MASKED_GENERATORS) {
    const link = path.join(root, 'etc/systemd/system-generators', generator);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.rmSync(link, { force: true });
    fs.symlinkSync('/dev/null', link);
  }
  const wants = path.join(root, 'etc/systemd/system/default.target');
  fs.rmSync(wants, { force: true });
  fs.symlinkSync('/lib/systemd/system/multi-user.target', wants);
  // debootstrap leaves downloaded packages behind; the image does not need them.
  fs.rmSync(path.join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
  fs.mkdirSync(path.join(root, 'var/cache/apt/archives/partial'), { recursive: true });
}

export interface BuildImageOptions {
  runner: ProcessRunner;
  recipe: DebianRecipe;
  mirror: string;
  /** Final ext4 path, in the owner's cache; it appears there only when complete. */
  output: string;
  owner: Owner;
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
  /** Where the tree and the image are built: a directory only root can write to. */
  workRoot?: string;
  /** The keys debootstrap checks the archive's Release file against. */
  keyring?: string;
}

export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/**
 * Builds the image as root in a private directory (debootstrap, mkfs and the root-owned tree never touch a
 * path the owner controls), then hands the finished file to the owner (see handOver).
 */
export async function buildDebianImage(options: BuildImageOptions): Promise<{ sizeBytes: number }> {
  const { runner, recipe, mirror, output, signal, progress } = options;
  const keyring = options.keyring ?? DEBIAN_KEYRING;
  if (!fs.existsSync(keyring)) {
    throw new BangerError('MISSING_TOOL', `the Debian archive keyring ${keyring} is missing, so downloads cannot be verified`, {
      hint: 'apt-get install debian-archive-keyring',
    });
  }
  // Named with this helper's pid: if it dies before the finally below, the next helper removes the directory.
  // Found before debootstrap runs: a missing one fails in a second, not after a minute of downloads.
  const tools = findGuestTools(recipe.tools);
  const workDir = makeBuildDir(options.workRoot);
  const tree = path.join(workDir, 'root');
  const tmpImage = path.join(workDir, 'rootfs.ext4');
  try {
    progress({ stage: 'image', message: `debootstrap ${recipe.suite} from ${mirror} (about a minute)` });
    let last = 0;
    const result = await runner.run(
      'debootstrap',
      ['--variant=minbase', `--include=${recipe.packages.join(',')}`, `--keyring=${keyring}`, '--force-check-gpg', recipe.suite, tree, mirror],
      {
        signal,
        onLine: (line) => {
          // debootstrap prints hundreds of lines; pass on the stage changes, at most one a second.
          const now = Date.now();
          if (/^I: (Retrieving|Validating|Extracting|Installing|Configuring|Unpacking|Base system)/.test(line) && now - last > 1000) {
            last = now;
            progress({ stage: 'image', message: line.slice(3) });
          }
        },
      },
    );
    if (signal.aborted) throw new BangerError('CANCELLED', 'image build cancelled');
    if (result.code !== 0) {
      const tail = lastLines(result.stderr + result.stdout, 8);
      throw new BangerError('IMAGE_BUILD_FAILED', `debootstrap failed (exit ${result.code}):\n${tail}`, {
        hint: `check that ${mirror} is reachable, or set image.debian_mirror in config.toml`,
      });
    }
    progress({ stage: 'image', message: 'configuring the image for banger' });
    customizeRootfs(tree);
    installGuestTools(tree, tools);
    progress({ stage: 'image', message: 'writing the ext4 image' });
    const sizeBytes = await writeExt4(runner, tree, tmpImage, 0, signal);
    progress({ stage: 'image', message: 'handing the image over' });
    await handOver(runner, tmpImage, output, options.owner, signal);
    return { sizeBytes };
  } finally {
    await removeBuildDir(runner, workDir);
  }
}
