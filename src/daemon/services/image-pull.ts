// `image pull REF`: an OCI image from a registry, made into a bootable image. bangerd resolves the manifest and
// fills the blob cache (verified downloads, as the owner); bangerd-root applies the layers as root and hands
// back an ext4 file; only then is the image registered. A pull that fails or is cancelled leaves no image and
// no half-written directory, and keeps the verified blobs for the next try.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { ImageInfo, ImagePullParams, ImagePullResult } from '../../protocol/methods.ts';
import { IMAGE_NAME_PATTERN } from '../../protocol/daemon-schemas.ts';
import { DEFAULT_IMAGES } from '../../protocol/image-recipes.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import type { Store } from '../../store/store.ts';
import { isoNow, type Clock } from '../../system/clock.ts';
import { SharedWork } from '../../system/shared-work.ts';
import { downloadLayers, resolveImage } from '../../image/oci-pull.ts';
import { formatImageRef, parseImageRef, type ImageRef } from '../../image/oci-ref.ts';
import type { RegistryClient } from '../../image/oci-registry.ts';

export interface ImagePullDeps {
  store: Store;
  ops: PrivilegedOps;
  clock: Clock;
  imagesDir: string;
  /** The blob cache (blobs/sha256/HEX). */
  blobCacheDir: string;
  /** A registry client with the current credentials and insecure registries; made afresh for each pull. */
  registry(): RegistryClient;
}

/** Whether an --image value is an OCI reference rather than a name: it has a registry, a path, a tag or a digest. */
export function looksLikeRef(value: string): boolean {
  return /[/:@]/.test(value);
}

/** The name a pulled image gets unless told: the repository's last component, and the tag unless it is latest. */
export function defaultImageName(ref: ImageRef): string {
  const base = ref.repository.split('/').at(-1)!;
  const suffix = ref.tag && ref.tag !== 'latest' ? `-${ref.tag}` : !ref.tag && ref.digest ? `-${ref.digest.slice(7, 19)}` : '';
  const name = `${base}${suffix}`.toLowerCase().replace(/[^a-z0-9._-]/g, '-').slice(0, 63);
  return IMAGE_NAME_PATTERN.test(name) ? name : `image-${name}`.slice(0, 63);
}

export class ImagePuller {
  /** One pull per reference, however many callers ask at once; cancelled once all of them gave up. */
  private readonly pulls = new SharedWork<string, ImagePullResult>();
  private readonly deps: ImagePullDeps;

  constructor(deps: ImagePullDeps) {
    this.deps = deps;
  }

  /** The registered image pulled from `ref`, if any. */
  findByRef(ref: string): ImageInfo | null {
    return this.byFullRef(formatImageRef(parseImageRef(ref)));
  }

  private byFullRef(full: string): ImageInfo | null {
    return this.deps.store.listImages().find((i) => i.ref === full) ?? null;
  }

  pull(params: ImagePullParams, ctx: CallContext): Promise<ImagePullResult> {
    const ref = parseImageRef(params.ref);
    const full = formatImageRef(ref);
    return this.pulls.run(full, ctx.signal, (signal) => this.pullOnce(ref, params, { ...ctx, signal }), () => {
      ctx.progress({ stage: 'image', message: `another pull of ${full} is under way; waiting for it` });
    });
  }

  private async pullOnce(ref: ImageRef, params: ImagePullParams, ctx: CallContext): Promise<ImagePullResult> {
    const full = formatImageRef(ref);
    const name = params.name ?? this.byFullRef(full)?.name ?? defaultImageName(ref);
    const existing = this.deps.store.getImage(name);
    if (DEFAULT_IMAGES.has(name) || (existing && existing.ref !== full)) {
      throw new BangerError('INVALID_ARGUMENT', `the image name ${name} is taken by ${existing?.source ?? 'a built-in image'}`, {
        hint: `give this one another name: banger image pull ${full} --name NAME`,
      });
    }
    const registry = this.deps.registry();
    const o = { registry, cacheDir: this.deps.blobCacheDir, signal: ctx.signal, progress: (message: string) => ctx.progress({ stage: 'image', message }) };
    ctx.progress({ stage: 'image', message: `resolving ${full}` });
    const resolved = await resolveImage(ref, o);
    if (existing && existing.digest === resolved.manifestDigest && fs.existsSync(existing.path) && params.sizeBytes === undefined) {
      return { image: existing, downloadedBytes: 0, upToDate: true, skipped: [], droppedXattrs: [] };
    }
    const { layers, downloadedBytes } = await downloadLayers(ref, resolved.layers, o);
    // Each manifest gets its own directory: VMs made from an earlier pull keep their backing file.
    const dir = path.join(this.deps.imagesDir, name, resolved.manifestDigest.slice(7, 23));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const output = path.join(dir, 'rootfs.ext4');
    try {
      const made = await this.deps.ops.importLayers({
        layers: layers.map((l) => ({ path: l.path, digest: l.digest, diffId: l.diffId, mediaType: l.mediaType })),
        output, minSizeBytes: params.sizeBytes ?? 0, user: resolved.run.user, devices: 'skip-under-dev',
      }, { signal: ctx.signal, progress: ctx.progress });
      if (ctx.signal.aborted) throw new BangerError('CANCELLED', `pull of ${full} cancelled`);
      const image: ImageInfo = {
        name, path: output, sizeBytes: made.sizeBytes, source: `oci:${full}`, createdAt: isoNow(this.deps.clock), boot: made.boot, hasSshd: made.hasSshd,
        ref: full, digest: resolved.manifestDigest, run: { ...resolved.run, uid: made.uid, gid: made.gid }, layers: layers.map((l) => l.digest), kernelRef: null,
      };
      this.deps.store.upsertImage(image);
      removeOtherVersions(this.deps.store, name, dir);
      ctx.progress({ stage: 'image', message: `image ${name} ready (${made.boot === 'systemd' ? 'boots its systemd' : "boots with banger's agent as init"}${made.hasSshd ? '' : ', no sshd'})` });
      return { image, downloadedBytes, upToDate: false, skipped: made.skipped, droppedXattrs: made.droppedXattrs };
    } catch (err) {
      if (this.deps.store.getImage(name)?.path !== output) fs.rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }
}

/** Earlier versions of an image, once no VM is made from the image (their overlays may point there). */
export function removeOtherVersions(store: Store, name: string, current: string): void {
  if (store.listVms().some((vm) => vm.image === name)) return;
  const parent = path.dirname(current);
  for (const entry of fs.readdirSync(parent)) {
    const dir = path.join(parent, entry);
    if (dir !== current) fs.rmSync(dir, { recursive: true, force: true });
  }
}
