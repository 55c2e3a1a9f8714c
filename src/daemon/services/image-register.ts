// Images made from files users have: `image register NAME --rootfs FILE` (an ext4 root file system, with the
// kernel it boots by name or as a kernel file and its initrd) and `image promote VM NAME` (a stopped VM's root
// disk, flattened). Both copy sparse files as the owner; neither needs bangerd-root.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { ImageBoot, ImageInfo, ImageRegisterParams, VmInfo } from '../../protocol/methods.ts';
import { DEFAULT_IMAGES } from '../../protocol/image-recipes.ts';
import type { Store } from '../../store/store.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { runChecked } from '../../system/process.ts';
import { isoNow, type Clock } from '../../system/clock.ts';
import type { KernelService } from './kernel-service.ts';
import { labelAndGrow } from './image-bundle.ts';

export interface ImageRegisterDeps {
  store: Store;
  runner: ProcessRunner;
  clock: Clock;
  imagesDir: string;
  vmsDir: string;
  kernels?: Pick<KernelService, 'ensure' | 'importFiles'>;
  /** A VM by name or id (as vm commands resolve it). */
  findVm?(ref: string): VmInfo;
}

/** Whether a path exists in an ext4 image, read with debugfs (intermediate symlinks are followed). */
async function hasPath(runner: ProcessRunner, image: string, p: string): Promise<boolean> {
  const r = await runner.run('debugfs', ['-R', `stat ${p}`, image]);
  return r.code === 0 && !/not found|File not found/i.test(r.stderr);
}

/** How a root file system boots (systemd when it has it) and whether it has sshd, read without mounting it. */
export async function inspectExt4(runner: ProcessRunner, image: string): Promise<{ boot: ImageBoot; hasSshd: boolean }> {
  const systemd = (await hasPath(runner, image, '/usr/lib/systemd/systemd')) || (await hasPath(runner, image, '/lib/systemd/systemd'));
  const sshd = (await hasPath(runner, image, '/usr/sbin/sshd')) || (await hasPath(runner, image, '/sbin/sshd'));
  return { boot: systemd ? 'systemd' : 'agent', hasSshd: sshd };
}

export class ImageRegistry {
  private readonly deps: ImageRegisterDeps;

  constructor(deps: ImageRegisterDeps) {
    this.deps = deps;
  }

  private checkNameFree(name: string): void {
    const existing = this.deps.store.getImage(name);
    if (existing || DEFAULT_IMAGES.has(name)) {
      throw new BangerError('INVALID_ARGUMENT', `the image name ${name} is taken${existing ? ` by ${existing.source}` : ' by a built-in image'}`, {
        hint: existing ? `pick another name, or delete it first: banger image delete ${name}` : 'pick another name',
      });
    }
  }

  /** Copies `source` (sparse) into a new version directory of image `name`, removing it again on failure. */
  private async copyIn(name: string, source: string, ctx: CallContext, fill: (out: string) => Promise<void>): Promise<string> {
    const dir = path.join(this.deps.imagesDir, name, crypto.randomBytes(8).toString('hex'));
    fs.mkdirSync(dir, { recursive: true });
    const out = path.join(dir, 'rootfs.ext4');
    try {
      ctx.progress({ stage: 'image', message: `copying ${source} (sparse)` });
      await fill(out);
      return out;
    } catch (err) {
      fs.rmSync(path.dirname(dir), { recursive: true, force: true });
      throw err;
    }
  }

  async register(params: ImageRegisterParams, ctx: CallContext): Promise<ImageInfo> {
    this.checkNameFree(params.name);
    // Checked here as well as in the CLI: the two ways of naming a kernel exclude each other.
    if (params.kernelRef !== undefined && (params.kernel !== undefined || params.initrd !== undefined)) {
      throw new BangerError('INVALID_ARGUMENT', '--kernel-ref and --kernel/--initrd exclude each other', { hint: 'name a kernel banger has, or give a kernel file and its initrd' });
    }
    const st = fs.statSync(params.rootfs, { throwIfNoEntry: false });
    if (!st?.isFile()) throw new BangerError('INVALID_ARGUMENT', `${params.rootfs} is not a file`, { hint: 'give an ext4 file system image: --rootfs FILE' });
    const fsck = await this.deps.runner.run('e2fsck', ['-fn', params.rootfs], { signal: ctx.signal });
    if (fsck.code !== 0) {
      throw new BangerError('INVALID_ARGUMENT', `${params.rootfs} is not a clean ext4 file system (e2fsck -fn exit ${fsck.code})`, { hint: `check it: e2fsck -f ${params.rootfs}` });
    }
    let kernelRef: string | null = null;
    if (params.kernelRef !== undefined) kernelRef = (await this.kernels().ensure(params.kernelRef, ctx)).id;
    const out = await this.copyIn(params.name, params.rootfs, ctx, async (file) => {
      await runChecked(this.deps.runner, 'cp', ['--sparse=always', params.rootfs, file], { signal: ctx.signal });
      await labelAndGrow(this.deps.runner, file, undefined, ctx.signal);
    });
    try {
      if (params.kernel !== undefined) kernelRef = (await this.kernels().importFiles(`${params.name}-kernel`, params.kernel, params.initrd!, ctx)).id;
      return this.save(params.name, out, `file:${params.rootfs}`, kernelRef, null, ctx);
    } catch (err) {
      fs.rmSync(path.join(this.deps.imagesDir, params.name), { recursive: true, force: true });
      throw err;
    }
  }

  /** A stopped VM's root file system (its overlay over its image, flattened) as a new image. */
  async promote(vmRef: string, name: string, ctx: CallContext): Promise<ImageInfo> {
    const vm = this.deps.findVm!(vmRef);
    this.checkNameFree(name);
    if (vm.state === 'running') {
      throw new BangerError('VM_BAD_STATE', `VM ${vm.name} is running; its disk would change while it is copied`, { hint: `stop it first: banger vm stop ${vm.name}` });
    }
    const base = this.deps.store.getImage(vm.image);
    const overlay = path.join(this.deps.vmsDir, vm.id, 'root.qcow2');
    const out = await this.copyIn(name, overlay, ctx, async (file) => {
      await runChecked(this.deps.runner, 'qemu-img', ['convert', '-O', 'raw', overlay, file], { signal: ctx.signal });
    });
    return this.save(name, out, `promoted:${vm.name}`, base?.kernelRef ?? null, base, ctx);
  }

  private async save(name: string, file: string, source: string, kernelRef: string | null, like: ImageInfo | null, ctx: CallContext): Promise<ImageInfo> {
    const traits = like ?? { ...(await inspectExt4(this.deps.runner, file)), run: null };
    const image: ImageInfo = {
      name, path: file, sizeBytes: fs.statSync(file).size, source, createdAt: isoNow(this.deps.clock), boot: traits.boot, hasSshd: traits.hasSshd,
      ref: null, digest: null, run: traits.run, layers: [], kernelRef,
    };
    this.deps.store.upsertImage(image);
    ctx.progress({ stage: 'image', message: `image ${name} registered (${image.boot === 'systemd' ? 'boots its systemd' : "boots with banger's agent as init"}${image.hasSshd ? '' : ', no sshd'})` });
    return image;
  }

  private kernels(): Pick<KernelService, 'ensure' | 'importFiles'> {
    if (!this.deps.kernels) throw new BangerError('INTERNAL', 'no kernel service');
    return this.deps.kernels;
  }
}
