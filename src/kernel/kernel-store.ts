// Kernels kept under a name (pulled from the catalog, or imported from a directory): KERNELS/NAME holds the
// kernel file as it came (vmlinux or vmlinuz), its modules when it has any, and banger's initrd for it, rebuilt
// when banger's /init changes (the initrd's name carries the revision), so a kernel outlives banger upgrades.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { KernelFormat, KernelInfo } from '../protocol/methods.ts';
import type { ProcessRunner } from '../system/process.ts';
import { INITRD_REVISION, buildBaseInitrd } from './initrd.ts';
import { ensurePvhKernel } from './pvh-kernel.ts';

export const KERNEL_FILES = ['vmlinux', 'vmlinuz'] as const;
export const MODULES_DIR = 'modules';
/** A kernel's own initrd (image register --kernel --initrd): it goes first, banger's after it. */
export const USER_INITRD = 'user-initrd.img';

/** The kernel file in a stored kernel's directory. */
export function storedKernelFile(dir: string): string | null {
  for (const name of KERNEL_FILES) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) return file;
  }
  return null;
}

export function initrdPathFor(dir: string): string {
  return path.join(dir, `initrd-${INITRD_REVISION}.img`);
}

/**
 * banger's initrd for the kernel in `dir`, built now when this banger has not built it yet (older revisions
 * are removed). The modules come from `dir/modules` (holding modules.dep), or from the kernel's own initrd
 * (user-initrd.img) put before banger's; without either, what a guest needs must be built into the kernel.
 */
export async function ensureKernelInitrd(dir: string, runner: ProcessRunner, busybox: string): Promise<string> {
  const initrd = initrdPathFor(dir);
  if (fs.existsSync(initrd)) return initrd;
  const modules = path.join(dir, MODULES_DIR);
  const hasModules = fs.existsSync(path.join(modules, 'modules.dep'));
  let bytes = await buildBaseInitrd({ runner, modulesDir: hasModules ? modules : null, busybox });
  const own = path.join(dir, USER_INITRD);
  if (fs.existsSync(own)) {
    // The kernel unpacks every archive in turn, later files over earlier ones: the kernel's own initrd brings
    // its modules (banger's /init loads them with modprobe), banger's brings /init. An archive must start
    // 4-byte aligned.
    const first = fs.readFileSync(own);
    bytes = Buffer.concat([first, Buffer.alloc((512 - (first.length % 512)) % 512), bytes]);
  }
  fs.writeFileSync(`${initrd}.partial`, bytes);
  // The fast-booting vmlinux comes with the initrd: a kernel stored by an older banger gets it here too.
  const kernel = storedKernelFile(dir);
  if (kernel) await ensurePvhKernel(kernel, runner);
  fs.renameSync(`${initrd}.partial`, initrd);
  for (const name of fs.readdirSync(dir)) {
    if (/^initrd-[0-9a-f]+\.img$/.test(name) && path.join(dir, name) !== initrd) fs.rmSync(path.join(dir, name), { force: true });
  }
  return initrd;
}

/** The store row of a kernel kept in `dir`. */
export function storedKernelInfo(o: { name: string; dir: string; version: string; format: KernelFormat; initrd: string; source: string; createdAt: string }): KernelInfo {
  const kernelPath = storedKernelFile(o.dir);
  if (!kernelPath) throw new BangerError('KERNEL_NOT_FOUND', `kernel ${o.name} has no vmlinux or vmlinuz in ${o.dir}`, { hint: `pull or import it again: banger kernel rm ${o.name}` });
  return { id: o.name, version: o.version, kernelPath, initrdPath: o.initrd, source: o.source, createdAt: o.createdAt, format: o.format };
}
