import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { ImageInfo } from '../../protocol/methods.ts';
import type { Store } from '../../store/store.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import { DEFAULT_IMAGES, recipeId } from '../../protocol/image-recipes.ts';
import { raceSignal } from '../../system/race-signal.ts';
import { isoNow, SingleFlight, type Clock } from '../../system/clock.ts';

export interface ImageServiceDeps {
  store: Store;
  ops: PrivilegedOps;
  clock: Clock;
  imagesDir: string;
  mirror: string;
}

export class ImageService {
  /** One build per image, however many VMs ask for it at once. */
  private readonly builds = new SingleFlight<string, ImageInfo>();
  private readonly deps: ImageServiceDeps;

  constructor(deps: ImageServiceDeps) {
    this.deps = deps;
  }

  list(): ImageInfo[] {
    return this.deps.store.listImages();
  }

  /** Returns the image, building a built-in one from its recipe the first time it is needed. */
  async ensure(name: string, ctx: CallContext): Promise<ImageInfo> {
    const existing = this.deps.store.getImage(name);
    const recipe = DEFAULT_IMAGES.get(name);
    // A built-in image is current only if it was built by this version of its recipe.
    if (existing && fs.existsSync(existing.path) && (!recipe || existing.path.includes(`/${recipeId(recipe)}/`))) return existing;
    if (!recipe) {
      throw new BangerError('IMAGE_NOT_FOUND', `no image named ${name}`, { hint: `see banger image list; built-in images: ${[...DEFAULT_IMAGES.keys()].join(', ')}` });
    }
    // It runs to completion even if the first caller goes away, so its work is not lost for the next one.
    return raceSignal(this.builds.run(name, () => this.build(name, ctx)), ctx.signal);
  }

  /** Earlier recipe versions of an image, once no VM is made from the image (their overlays may point there). */
  private removeOldBuilds(name: string, current: string): void {
    if (this.deps.store.listVms().some((vm) => vm.image === name)) return;
    const parent = path.dirname(current);
    for (const entry of fs.readdirSync(parent)) {
      const dir = path.join(parent, entry);
      if (dir !== current) fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  private async build(name: string, ctx: CallContext): Promise<ImageInfo> {
    // Each recipe version gets its own directory: VMs made from an older build keep their backing file.
    const dir = path.join(this.deps.imagesDir, name, recipeId(DEFAULT_IMAGES.get(name)!));
    fs.mkdirSync(dir, { recursive: true });
    const output = path.join(dir, 'rootfs.ext4');
    ctx.progress({ stage: 'image', message: `building image ${name} from Debian's archive (first use only)` });
    const { sizeBytes } = await this.deps.ops.buildImage({ name, mirror: this.deps.mirror, output }, { progress: ctx.progress });
    const image: ImageInfo = { name, path: output, sizeBytes, source: `recipe:${name} (${this.deps.mirror})`, createdAt: isoNow(this.deps.clock) };
    this.deps.store.upsertImage(image);
    this.removeOldBuilds(name, dir);
    ctx.progress({ stage: 'image', message: `image ${name} ready` });
    return image;
  }
}
