// The default guest kernel: the host distro's own kernel package, plus the small initrd from initrd.ts.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { KernelInfo } from '../protocol/methods.ts';
import type { ProcessRunner } from '../system/process.ts';
import { INITRD_REVISION, buildBaseInitrd } from './initrd.ts';
import { ensurePvhKernel } from './pvh-kernel.ts';

export interface HostKernelSource {
  bootDir: string;
  modulesRoot: string;
  busybox: string;
}

export const HOST_KERNEL_SOURCE: HostKernelSource = { bootDir: '/boot', modulesRoot: '/lib/modules', busybox: '/bin/busybox' };

function compareVersions(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** The id of a host kernel with banger's initrd: a new initrd revision is a new kernel entry. */
export function hostKernelId(version: string): string {
  return `host-${version}-${INITRD_REVISION}`;
}

/** Debian's plain flavour (…-amd64) runs any guest; -cloud and -rt builds are picked only when it is absent. */
function flavourRank(version: string): number {
  return /-(cloud|rt)-[a-z0-9]+$/.test(version) ? 0 : 1;
}

/** The newest /boot/vmlinuz-VERSION of the plain flavour that has a matching /lib/modules/VERSION. */
export function findHostKernel(source: HostKernelSource): { version: string; vmlinuz: string; modulesDir: string } {
  let names: string[] = [];
  try {
    names = fs.readdirSync(source.bootDir);
  } catch {
    // No /boot at all is reported below like an empty one.
  }
  const versions = names
    .filter((n) => n.startsWith('vmlinuz-'))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => fs.existsSync(path.join(source.modulesRoot, v, 'modules.dep')))
    .sort((a, b) => flavourRank(a) - flavourRank(b) || compareVersions(a, b));
  const version = versions.at(-1);
  if (!version) {
    throw new BangerError('KERNEL_NOT_FOUND', `no kernel with modules found in ${source.bootDir}`, {
      hint: 'install the distro kernel package: apt-get install linux-image-amd64',
    });
  }
  return { version, vmlinuz: path.join(source.bootDir, `vmlinuz-${version}`), modulesDir: path.join(source.modulesRoot, version) };
}

function checkStaticBusybox(file: string): void {
  let head: Buffer;
  try {
    head = fs.readFileSync(file).subarray(0, 1 << 16);
  } catch {
    throw new BangerError('MISSING_TOOL', `${file} is missing; the guest initrd needs a static busybox`, { hint: 'apt-get install busybox-static' });
  }
  if (head.includes('ld-linux')) {
    throw new BangerError('MISSING_TOOL', `${file} is dynamically linked; the guest initrd needs a static busybox`, { hint: 'apt-get install busybox-static' });
  }
}

/** Copies the host kernel into banger's kernel dir and builds its initrd. Idempotent per kernel version. */
export async function importHostKernel(options: {
  runner: ProcessRunner;
  kernelsDir: string;
  source?: HostKernelSource;
  /** When the kernel is recorded as imported (the daemon's clock); now when not given. */
  createdAt?: string;
}): Promise<KernelInfo> {
  const source = options.source ?? HOST_KERNEL_SOURCE;
  const found = findHostKernel(source);
  checkStaticBusybox(source.busybox);
  const id = hostKernelId(found.version);
  const dir = path.join(options.kernelsDir, id);
  const kernelPath = path.join(dir, 'vmlinuz');
  const initrdPath = path.join(dir, 'initrd.img');
  if (!(fs.existsSync(kernelPath) && fs.existsSync(initrdPath))) {
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    try {
      try {
        fs.copyFileSync(found.vmlinuz, path.join(tmp, 'vmlinuz'));
      } catch (err) {
        throw new BangerError('KERNEL_NOT_FOUND', `cannot read ${found.vmlinuz}`, { hint: 'make the kernel readable by banger\'s user, or run the daemon as root', cause: err });
      }
      const initrd = await buildBaseInitrd({ runner: options.runner, modulesDir: found.modulesDir, busybox: source.busybox });
      fs.writeFileSync(path.join(tmp, 'initrd.img'), initrd);
      await ensurePvhKernel(path.join(tmp, 'vmlinuz'), options.runner);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(tmp, dir);
    } catch (err) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
  }
  return { id, version: found.version, kernelPath, initrdPath, source: `host:${found.vmlinuz}`, createdAt: options.createdAt ?? new Date().toISOString(), format: 'bzimage' };
}
