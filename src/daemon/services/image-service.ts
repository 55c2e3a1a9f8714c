// The images VMs boot from: built-in ones built from their recipe on first use, OCI images pulled from a
// registry (image-pull.ts), and what users do with them (show, delete, the blob cache).
import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type {
  BlobCacheEntry, ImageCachePruneParams, ImageCachePruneResult, ImageInfo, ImagePullParams, ImagePullResult, ImageRegisterParams, ImageShowResult,
  MakeBundleParams, MakeBundleResult, VmInfo,
} from '../../protocol/methods.ts';
import type { ProcessRunner } from '../../system/process.ts';
import type { Catalog } from '../../image/catalog.ts';
import type { KernelService } from './kernel-service.ts';
import { ImageBundles } from './image-bundle.ts';
import { ImageRegistry } from './image-register.ts';
import type { Store } from '../../store/store.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import { DEFAULT_IMAGES, recipeId } from '../../protocol/image-recipes.ts';
import { raceSignal } from '../../system/race-signal.ts';
import { SharedWork } from '../../system/shared-work.ts';
import { isoNow, SingleFlight, type Clock } from '../../system/clock.ts';
import { listBlobs, removePartialBlobs } from '../../image/blob-cache.ts';
import type { RegistryClient } from '../../image/oci-registry.ts';
import { ImagePuller, looksLikeRef, removeOtherVersions } from './image-pull.ts';

export interface ImageServiceDeps {
  store: Store;
  ops: PrivilegedOps;
  runner: ProcessRunner;
  clock: Clock;
  imagesDir: string;
  vmsDir: string;
  mirror: string;
  /** The OCI blob cache. */
  blobCacheDir: string;
  registry(): RegistryClient;
  /** The bundle catalog (the shipped one, or [image] catalog). */
  catalog(): Promise<Catalog>;
  kernels?: Pick<KernelService, 'ensure' | 'importFiles'>;
  /** A VM by name or id, for image promote. */
  findVm?(ref: string): VmInfo;
  log?(message: string): void;
}

export class ImageService {
  /** One build per image, however many VMs ask for it at once. */
  private readonly builds = new SingleFlight<string, ImageInfo>();
  /** One download per catalog image. */
  private readonly bundlePulls = new SharedWork<string, ImagePullResult>();
  private readonly puller: ImagePuller;
  private readonly bundles: ImageBundles;
  private readonly registry: ImageRegistry;
  private readonly deps: ImageServiceDeps;

  constructor(deps: ImageServiceDeps) {
    this.deps = deps;
    this.puller = new ImagePuller(deps);
    this.bundles = new ImageBundles({ ...deps, ...(deps.kernels ? { ensureKernel: (name: string, ctx: CallContext) => deps.kernels!.ensure(name, ctx) } : {}) });
    this.registry = new ImageRegistry(deps);
  }

  list(): ImageInfo[] {
    return this.deps.store.listImages();
  }

  /** An image by name, or by the OCI reference it was pulled from. */
  private find(nameOrRef: string): ImageInfo | null {
    return this.deps.store.getImage(nameOrRef) ?? (looksLikeRef(nameOrRef) ? this.puller.findByRef(nameOrRef) : null);
  }

  private get(nameOrRef: string): ImageInfo {
    const image = this.find(nameOrRef);
    if (!image) throw new BangerError('IMAGE_NOT_FOUND', `no image named ${nameOrRef}`, { hint: 'see banger image list' });
    return image;
  }

  show(nameOrRef: string): ImageShowResult {
    const image = this.get(nameOrRef);
    return { image, vms: this.deps.store.listVms().filter((vm) => vm.image === image.name).map((vm) => vm.name) };
  }

  /** A catalog bundle by name, else an OCI image by reference (a bare name is a Docker Hub image then). */
  async pull(params: ImagePullParams, ctx: CallContext): Promise<ImagePullResult> {
    if (!looksLikeRef(params.ref)) {
      const entry = await this.bundles.entry(params.ref);
      if (entry) {
        if (params.name !== undefined && params.name !== entry.name) {
          throw new BangerError('INVALID_ARGUMENT', `a catalog image keeps its catalog name (${entry.name}); --name is for OCI images`, { hint: `banger image pull ${entry.name}` });
        }
        // Like OCI pulls: shared by every caller, cancelled once all of them gave up.
        return this.bundlePulls.run(entry.name, ctx.signal, (signal) => this.bundles.pull(entry, params.sizeBytes, { ...ctx, signal }), () => {
          ctx.progress({ stage: 'image', message: `another pull of ${entry.name} is under way; waiting for it` });
        });
      }
    }
    return this.puller.pull(params, ctx);
  }

  makeBundle(params: MakeBundleParams, ctx: CallContext): Promise<MakeBundleResult> {
    return this.bundles.make(params, ctx);
  }

  register(params: ImageRegisterParams, ctx: CallContext): Promise<ImageInfo> {
    return this.registry.register(params, ctx);
  }

  promote(vm: string, name: string, ctx: CallContext): Promise<ImageInfo> {
    return this.registry.promote(vm, name, ctx);
  }

  /** Removes an image and its files; refused while a VM is made from it (its disk is an overlay on the image). */
  delete(nameOrRef: string): { name: string } {
    const { image, vms } = this.show(nameOrRef);
    if (vms.length > 0) {
      throw new BangerError('VM_BAD_STATE', `image ${image.name} is used by ${vms.length === 1 ? 'VM' : 'VMs'} ${vms.join(', ')}`, {
        hint: `delete ${vms.length === 1 ? 'it' : 'them'} first: banger vm delete ${vms.join(' ')}`,
      });
    }
    this.deps.store.deleteImage(image.name);
    fs.rmSync(path.join(this.deps.imagesDir, image.name), { recursive: true, force: true });
    return { name: image.name };
  }

  cacheList(): BlobCacheEntry[] {
    const images = this.deps.store.listImages();
    return listBlobs(this.deps.blobCacheDir).map((b) => ({ digest: b.digest, sizeBytes: b.sizeBytes, images: images.filter((i) => i.layers.includes(b.digest)).map((i) => i.name) }));
  }

  /** Removes cached blobs no registered image was made from (all of them with `all`). */
  cachePrune(params: ImageCachePruneParams): ImageCachePruneResult {
    const used = new Set(this.deps.store.listImages().flatMap((i) => i.layers));
    let removed = 0;
    let freedBytes = 0;
    for (const blob of listBlobs(this.deps.blobCacheDir)) {
      if (!params.all && used.has(blob.digest)) continue;
      fs.rmSync(blob.file, { force: true });
      removed++;
      freedBytes += blob.sizeBytes;
    }
    return { removed, freedBytes };
  }

  /**
   * What a crash or a kill left: unfinished downloads, and image directories no registered image points into
   * and no VM is made from. Run at daemon start, when no pull or build is under way.
   */
  sweep(): void {
    const partial = removePartialBlobs(this.deps.blobCacheDir);
    if (partial > 0) this.deps.log?.(`removed ${partial} unfinished blob downloads`);
    let names: string[];
    try {
      names = fs.readdirSync(this.deps.imagesDir);
    } catch {
      return;
    }
    const vms = this.deps.store.listVms();
    for (const name of names) {
      if (vms.some((vm) => vm.image === name)) continue;
      const image = this.deps.store.getImage(name);
      const dir = path.join(this.deps.imagesDir, name);
      if (!image) {
        fs.rmSync(dir, { recursive: true, force: true });
        this.deps.log?.(`removed ${dir}: no image is registered under that name`);
      } else if (image.path.startsWith(`${dir}${path.sep}`) && fs.existsSync(path.dirname(image.path))) removeOtherVersions(this.deps.store, name, path.dirname(image.path));
    }
  }

  /**
   * Returns the image a VM is made from: a registered name, an OCI reference (pulled on first use), or a
   * built-in image built from its recipe the first time it is needed.
   */
  async ensure(nameOrRef: string, ctx: CallContext): Promise<ImageInfo> {
    const recipe = DEFAULT_IMAGES.get(nameOrRef);
    const existing = this.find(nameOrRef);
    // A built-in image is current only if it was built by this version of its recipe.
    if (existing && fs.existsSync(existing.path) && (!recipe || existing.path.includes(`/${recipeId(recipe)}/`) || existing.source.startsWith('bundle:'))) return existing;
    if (looksLikeRef(nameOrRef)) return (await this.pull({ ref: nameOrRef }, ctx)).image;
    // A missing image the catalog names is pulled; a catalog that cannot be read says so, and a built-in image
    // is then built as before.
    try {
      const entry = await this.bundles.entry(nameOrRef);
      if (entry) return (await this.pull({ ref: nameOrRef }, ctx)).image;
    } catch (err) {
      if (!recipe) throw err;
      ctx.progress({ stage: 'image', message: `the catalog cannot be read (${messageOf(err)}); building ${nameOrRef} instead` });
    }
    if (!recipe) {
      throw new BangerError('IMAGE_NOT_FOUND', `no image named ${nameOrRef}`, {
        hint: `see banger image list; pull one with banger image pull REF; built-in images: ${[...DEFAULT_IMAGES.keys()].join(', ')}`,
      });
    }
    // It runs to completion even if the first caller goes away, so its work is not lost for the next one.
    return raceSignal(this.builds.run(nameOrRef, () => this.build(nameOrRef, ctx)), ctx.signal);
  }

  /** Where `ensure` would get an image from now, without getting it (banger doctor). */
  async origin(nameOrRef: string): Promise<{ from: 'local' | 'catalog' | 'recipe' | 'registry' | 'nowhere'; detail: string }> {
    const recipe = DEFAULT_IMAGES.get(nameOrRef);
    const existing = this.find(nameOrRef);
    if (existing && fs.existsSync(existing.path) && (!recipe || existing.path.includes(`/${recipeId(recipe)}/`) || existing.source.startsWith('bundle:'))) {
      return { from: 'local', detail: `${existing.path} (${existing.source})` };
    }
    if (looksLikeRef(nameOrRef)) return { from: 'registry', detail: `pulled from its registry on first use` };
    let catalogError: string | null = null;
    try {
      if (await this.bundles.entry(nameOrRef)) return { from: 'catalog', detail: 'pulled from the catalog on first use' };
    } catch (err) {
      catalogError = messageOf(err);
    }
    if (recipe) return { from: 'recipe', detail: `built from Debian's archive on first use (about a minute)${catalogError ? `; the catalog cannot be read: ${catalogError}` : ''}` };
    return { from: 'nowhere', detail: catalogError ? `the catalog cannot be read: ${catalogError}` : 'not registered, not in the catalog, and not a built-in image' };
  }

  private async build(name: string, ctx: CallContext): Promise<ImageInfo> {
    // Each recipe version gets its own directory: VMs made from an older build keep their backing file.
    const dir = path.join(this.deps.imagesDir, name, recipeId(DEFAULT_IMAGES.get(name)!));
    fs.mkdirSync(dir, { recursive: true });
    const output = path.join(dir, 'rootfs.ext4');
    ctx.progress({ stage: 'image', message: `building image ${name} from Debian's archive (first use only)` });
    const { sizeBytes } = await this.deps.ops.buildImage({ name, mirror: this.deps.mirror, output }, { progress: ctx.progress });
    const image: ImageInfo = {
      name, path: output, sizeBytes, source: `recipe:${name} (${this.deps.mirror})`, createdAt: isoNow(this.deps.clock), boot: 'systemd', hasSshd: true,
      ref: null, digest: null, run: null, layers: [], kernelRef: null,
    };
    this.deps.store.upsertImage(image);
    removeOtherVersions(this.deps.store, name, dir);
    ctx.progress({ stage: 'image', message: `image ${name} ready` });
    return image;
  }
}
