// The kernels VMs boot: the host distro's kernel (the default, imported on first use), kernels pulled from the
// catalog as bundles, and kernels imported from a directory; each with banger's own initrd.
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { KernelCatalogEntry, KernelInfo, KernelShowResult } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { isoNow, SingleFlight, type Clock } from '../../system/clock.ts';
import { SharedWork } from '../../system/shared-work.ts';
import { findHostKernel, hostKernelId, importHostKernel, type HostKernelSource, HOST_KERNEL_SOURCE } from '../../kernel/host-kernel.ts';
import { ensureKernelInitrd, initrdPathFor, MODULES_DIR, USER_INITRD, storedKernelFile, storedKernelInfo } from '../../kernel/kernel-store.ts';
import { kernelFormat } from '../../kernel/kernel-format.ts';
import { findKernelParts } from '../../kernel/kernel-dir.ts';
import { readBundle } from '../../image/bundle.ts';
import type { Catalog } from '../../image/catalog.ts';

export interface KernelServiceDeps {
  store: Store;
  runner: ProcessRunner;
  clock: Clock;
  kernelsDir: string;
  source?: HostKernelSource;
  catalog?: () => Promise<Catalog>;
}

/** A bundle larger than this is refused whatever the catalog says. */
const KERNEL_BUNDLE_CAP = 2 * 1024 ** 3;

const kernelManifest = z.object({
  schemaVersion: z.literal(1),
  kind: z.literal('kernel'),
  name: z.string().max(128),
  version: z.string().regex(/^[A-Za-z0-9._+-]{1,128}$/),
  kernel: z.enum(['vmlinux', 'vmlinuz']),
});

export class KernelService {
  /** Concurrent creates share one import; concurrent pulls of a kernel share one download. */
  private readonly imports = new SingleFlight<string, KernelInfo>();
  /** Downloads, shared by every caller and cancelled once all of them gave up (as image pulls are). */
  private readonly pulls = new SharedWork<string, KernelInfo>();
  private readonly deps: KernelServiceDeps;

  constructor(deps: KernelServiceDeps) {
    this.deps = deps;
  }

  private get busybox(): string {
    return (this.deps.source ?? HOST_KERNEL_SOURCE).busybox;
  }

  list(): KernelInfo[] {
    return this.deps.store.listKernels();
  }

  /** The default kernel as it stands, without importing it: the host's kernel version, and its record once imported. */
  hostDefault(): { version: string; kernel: KernelInfo | null } {
    const found = findHostKernel(this.deps.source ?? HOST_KERNEL_SOURCE);
    return { version: found.version, kernel: this.deps.store.getKernel(hostKernelId(found.version)) };
  }

  /** The default kernel: the host's newest distro kernel, imported on first use. */
  async ensureDefault(ctx: Pick<CallContext, 'progress'>): Promise<KernelInfo> {
    const source = this.deps.source ?? HOST_KERNEL_SOURCE;
    const found = findHostKernel(source);
    const existing = this.deps.store.getKernel(hostKernelId(found.version));
    if (existing && fs.existsSync(existing.kernelPath) && fs.existsSync(existing.initrdPath)) return existing;
    return this.imports.run(found.version, async () => {
      ctx.progress({ stage: 'kernel', message: `preparing guest kernel ${found.version} from ${found.vmlinuz}` });
      const kernel = await importHostKernel({ runner: this.deps.runner, kernelsDir: this.deps.kernelsDir, source, createdAt: isoNow(this.deps.clock) });
      this.deps.store.upsertKernel(kernel);
      return kernel;
    });
  }

  /** A kernel by name, pulled from the catalog when it is not here; its initrd made current. */
  async ensure(name: string, ctx: CallContext): Promise<KernelInfo> {
    const existing = this.deps.store.getKernel(name);
    if (existing && fs.existsSync(existing.kernelPath)) {
      if (name.startsWith('host-')) return existing;
      const initrd = await ensureKernelInitrd(path.dirname(existing.kernelPath), this.deps.runner, this.busybox);
      if (initrd === existing.initrdPath) return existing;
      const updated = { ...existing, initrdPath: initrd };
      this.deps.store.upsertKernel(updated);
      return updated;
    }
    return this.pull(name, false, ctx);
  }

  private async catalogEntry(name: string): Promise<Catalog['kernels'][number]> {
    const catalog = this.deps.catalog ? await this.deps.catalog() : null;
    const entry = catalog?.kernels.find((k) => k.name === name);
    if (!entry) {
      throw new BangerError('KERNEL_NOT_FOUND', `no kernel named ${name} here or in the catalog`, {
        hint: 'see banger kernel list --available; or import one: banger kernel import NAME --from DIR',
      });
    }
    return entry;
  }

  /** What the catalog offers, and which of it is here. */
  async catalog(): Promise<KernelCatalogEntry[]> {
    const catalog = this.deps.catalog ? await this.deps.catalog() : { kernels: [] };
    return catalog.kernels.map((k) => ({ name: k.name, description: k.description, sizeBytes: k.size, state: this.deps.store.getKernel(k.name) ? 'pulled' : 'available' }));
  }

  /** Pulls a kernel bundle from the catalog (again with `force`), verified, and registers it. */
  pull(name: string, force: boolean, ctx: CallContext): Promise<KernelInfo> {
    return this.pulls.run(name, ctx.signal, (signal) => this.pullOnce(name, force, { ...ctx, signal }), () => {
      ctx.progress({ stage: 'kernel', message: `another pull of kernel ${name} is under way; waiting for it` });
    });
  }

  private async pullOnce(name: string, force: boolean, ctx: CallContext): Promise<KernelInfo> {
    const existing = this.deps.store.getKernel(name);
    if (existing && !force) {
      throw new BangerError('INVALID_ARGUMENT', `kernel ${name} is already here`, { hint: `pull it again with: banger kernel pull ${name} --force` });
    }
    const entry = await this.catalogEntry(name);
    return this.install(name, `catalog:${entry.url}`, ctx, async (dir) => {
      ctx.progress({ stage: 'kernel', message: `downloading kernel ${name} (${Math.ceil(entry.size / 1024 ** 2)} MiB) from ${entry.url}` });
      const { manifest } = await readBundle({
        source: entry.url, sha256: entry.sha256, declaredSize: entry.size, hardCap: KERNEL_BUNDLE_CAP, outDir: dir, signal: ctx.signal,
        members: (member, type) => {
          if (type === 'file' && (member === 'vmlinux' || member === 'vmlinuz')) return 'accept';
          if (member === MODULES_DIR || member.startsWith(`${MODULES_DIR}/`)) return 'accept';
          return `a kernel bundle holds vmlinux or vmlinuz, and modules/; not ${member}`;
        },
      });
      const parsed = kernelManifest.safeParse(manifest);
      if (!parsed.success) throw new BangerError('KERNEL_NOT_FOUND', `kernel bundle ${name}: its manifest.json is not valid: ${parsed.error.issues[0]!.message}`, { hint: 'the bundle is broken; tell whoever publishes the catalog' });
      if (!fs.existsSync(path.join(dir, parsed.data.kernel))) throw new BangerError('KERNEL_NOT_FOUND', `kernel bundle ${name}: its manifest names ${parsed.data.kernel}, which the bundle does not hold`, { hint: 'the bundle is broken; tell whoever publishes the catalog' });
      return parsed.data.version;
    });
  }

  /** Imports the kernel in `from` (vmlinux or vmlinuz, and its modules) under `name`. */
  import(name: string, from: string, ctx: CallContext): Promise<KernelInfo> {
    return this.imports.run(`import:${name}`, async () => {
      if (this.deps.store.getKernel(name)) throw new BangerError('INVALID_ARGUMENT', `kernel ${name} is already here`, { hint: `remove it first (banger kernel rm ${name}) or pick another name` });
      const parts = findKernelParts(from);
      return this.install(name, `import:${from}`, ctx, async (dir) => {
        ctx.progress({ stage: 'kernel', message: `importing ${parts.kernel}${parts.modulesDir ? ` with the modules in ${parts.modulesDir}` : ' (no modules: what a guest needs must be built in)'}` });
        fs.copyFileSync(parts.kernel, path.join(dir, parts.format === 'elf' ? 'vmlinux' : 'vmlinuz'));
        if (parts.modulesDir) {
          // Regular files and directories only: a modules tree's build and source links point into the host.
          fs.cpSync(parts.modulesDir, path.join(dir, MODULES_DIR), { recursive: true, filter: (src) => !fs.lstatSync(src).isSymbolicLink() });
        }
        return parts.version ?? name;
      });
    });
  }

  /**
   * Registers a kernel file and the initrd made for it (image register --kernel --initrd): banger's initrd goes
   * after it, and /init loads the guest's modules from it with modprobe.
   */
  importFiles(name: string, kernelFile: string, initrd: string, ctx: CallContext): Promise<KernelInfo> {
    return this.imports.run(`import:${name}`, async () => {
      if (this.deps.store.getKernel(name)) throw new BangerError('INVALID_ARGUMENT', `kernel ${name} is already here`, { hint: `remove it first (banger kernel rm ${name}) or pick another name` });
      const format = kernelFormat(kernelFile);
      return this.install(name, `import:${kernelFile}`, ctx, async (dir) => {
        fs.copyFileSync(kernelFile, path.join(dir, format === 'elf' ? 'vmlinux' : 'vmlinuz'));
        fs.copyFileSync(initrd, path.join(dir, USER_INITRD));
        return /vmlinu[xz]-(\d+\.\d+\S*)$/.exec(path.basename(kernelFile))?.[1] ?? name;
      });
    });
  }

  /**
   * Fills a fresh directory with `fill` (which returns the kernel's version), checks the kernel file, builds
   * banger's initrd, and only then puts the directory in place and registers the kernel.
   */
  private async install(name: string, source: string, ctx: CallContext, fill: (dir: string) => Promise<string>): Promise<KernelInfo> {
    const final = path.join(this.deps.kernelsDir, name);
    const dir = `${final}.partial-${process.pid}`;
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    try {
      const version = await fill(dir);
      const file = storedKernelFile(dir);
      if (!file) throw new BangerError('KERNEL_NOT_FOUND', `kernel ${name}: no vmlinux or vmlinuz`);
      const format = kernelFormat(file);
      ctx.progress({ stage: 'kernel', message: `building banger's initrd for kernel ${name} (${format === 'elf' ? 'ELF vmlinux' : 'bzImage'}, ${version})` });
      await ensureKernelInitrd(dir, this.deps.runner, this.busybox);
      if (ctx.signal.aborted) throw new BangerError('CANCELLED', `kernel ${name}: cancelled`);
      fs.rmSync(final, { recursive: true, force: true });
      fs.renameSync(dir, final);
      const kernel = storedKernelInfo({ name, dir: final, version, format, initrd: initrdPathFor(final), source, createdAt: isoNow(this.deps.clock) });
      this.deps.store.upsertKernel(kernel);
      return kernel;
    } catch (err) {
      fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  show(name: string): KernelShowResult<KernelInfo> {
    const kernel = this.deps.store.getKernel(name);
    if (!kernel) throw new BangerError('KERNEL_NOT_FOUND', `no kernel named ${name}`, { hint: 'see banger kernel list' });
    return {
      kernel,
      images: this.deps.store.listImages().filter((i) => i.kernelRef === name).map((i) => i.name),
      vms: this.deps.store.listVms().filter((vm) => vm.kernel === name).map((vm) => vm.name),
    };
  }

  /** Removes a kernel no image names and no VM boots. */
  delete(name: string): { name: string } {
    const { kernel, images, vms } = this.show(name);
    if (images.length > 0 || vms.length > 0) {
      const users = [...images.map((i) => `image ${i}`), ...vms.map((v) => `VM ${v}`)];
      throw new BangerError('VM_BAD_STATE', `kernel ${name} is used by ${users.join(', ')}`, {
        hint: vms.length > 0 ? `delete the VMs first: banger vm delete ${vms.join(' ')}` : `delete the images first: banger image delete ${images.join(' ')}`,
      });
    }
    this.deps.store.deleteKernel(name);
    fs.rmSync(path.dirname(kernel.kernelPath), { recursive: true, force: true });
    return { name };
  }
}
