// Image bundles: `image pull NAME` of a catalog entry (a tar.zst holding rootfs.ext4 and manifest.json, checked
// against the catalog's sha256 and size while it streams, registered only once whole), and `image make-bundle`,
// which writes one from a registered image or from a rootfs tar (imported as root through the same path as OCI
// layers, so owners, modes, setuid bits and symlinks are kept).
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { z } from 'zod';
import { BangerError } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { ImageInfo, ImagePullResult, MakeBundleParams, MakeBundleResult } from '../../protocol/methods.ts';
import type { PrivilegedOps } from '../../protocol/privileged-ops.ts';
import type { Store } from '../../store/store.ts';
import type { ProcessRunner } from '../../system/process.ts';
import { runChecked } from '../../system/process.ts';
import { isoNow, type Clock } from '../../system/clock.ts';
import { HashingStream } from '../../system/hashing-stream.ts';
import { ROOT_LABEL } from '../../system/guest-contract.ts';
import { readBundle, writeBundle } from '../../image/bundle.ts';
import type { Catalog, CatalogImage } from '../../image/catalog.ts';
import { blobPath } from '../../image/oci-pull.ts';
import { removeOtherVersions } from './image-pull.ts';
import { IMAGE_NAME_PATTERN } from '../../protocol/daemon-schemas.ts';

/** A bundle larger than this is refused whatever the catalog says. */
export const IMAGE_BUNDLE_CAP = 64 * 1024 ** 3;
const ROOTFS = 'rootfs.ext4';
const NAME = IMAGE_NAME_PATTERN;

const runSchema = z.object({
  env: z.array(z.string()), workingDir: z.string().nullable(), user: z.string().nullable(), uid: z.int().min(0), gid: z.int().min(0),
  entrypoint: z.array(z.string()).nullable(), cmd: z.array(z.string()).nullable(),
});

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(1),
  kind: z.literal('image'),
  name: z.string().regex(NAME),
  rootfs: z.literal(ROOTFS),
  kernel_ref: z.string().regex(NAME).nullable(),
  boot: z.enum(['systemd', 'agent']),
  has_sshd: z.boolean(),
  run: runSchema.nullable(),
});
export type ImageManifest = z.output<typeof imageManifestSchema>;

export interface ImageBundleDeps {
  store: Store;
  ops: PrivilegedOps;
  runner: ProcessRunner;
  clock: Clock;
  imagesDir: string;
  blobCacheDir: string;
  catalog(): Promise<Catalog>;
  /** Brings the kernel a bundle names (from the catalog when it is not here). */
  ensureKernel?(name: string, ctx: CallContext): Promise<unknown>;
}

export class ImageBundles {
  private readonly deps: ImageBundleDeps;

  constructor(deps: ImageBundleDeps) {
    this.deps = deps;
  }

  async entry(name: string): Promise<CatalogImage | null> {
    return (await this.deps.catalog()).images.find((i) => i.name === name) ?? null;
  }

  /** Downloads and registers the catalog's image `entry`, and the kernel it names. */
  async pull(entry: CatalogImage, sizeBytes: number | undefined, ctx: CallContext): Promise<ImagePullResult> {
    const existing = this.deps.store.getImage(entry.name);
    const dir = path.join(this.deps.imagesDir, entry.name, entry.sha256.slice(0, 16));
    if (existing && existing.path === path.join(dir, ROOTFS) && fs.existsSync(existing.path) && sizeBytes === undefined) {
      return { image: existing, downloadedBytes: 0, upToDate: true, skipped: [], droppedXattrs: [] };
    }
    if (existing && !existing.source.startsWith('bundle:')) {
      throw new BangerError('INVALID_ARGUMENT', `the image name ${entry.name} is taken by ${existing.source}`, { hint: `delete it first: banger image delete ${entry.name}` });
    }
    const partial = `${dir}.partial-${process.pid}`;
    fs.rmSync(partial, { recursive: true, force: true });
    fs.mkdirSync(partial, { recursive: true });
    try {
      ctx.progress({ stage: 'image', message: `downloading bundle ${entry.name} (${Math.ceil(entry.size / 1024 ** 2)} MiB) from ${entry.url}` });
      let shown = 0;
      const { manifest, bytes } = await readBundle({
        source: entry.url, sha256: entry.sha256, declaredSize: entry.size, hardCap: IMAGE_BUNDLE_CAP, outDir: partial, signal: ctx.signal,
        members: (name, type) => (type === 'file' && name === ROOTFS ? 'accept' : `an image bundle holds ${ROOTFS} and manifest.json; not ${name}`),
        progress: (got, total) => {
          const step = Math.floor((got / total) * 4);
          if (step > shown && step < 4) {
            shown = step;
            ctx.progress({ stage: 'image', message: `${Math.round((got / total) * 100)}% of ${entry.name}` });
          }
        },
      });
      const m = checkManifest(manifest, entry.name, partial);
      const rootfs = path.join(partial, ROOTFS);
      // Only the guest kernel reads the file system; this is a sanity check that it is one, read-only.
      const fsck = await this.deps.runner.run('e2fsck', ['-fn', rootfs], { signal: ctx.signal });
      if (fsck.code !== 0) throw new BangerError('IMAGE_NOT_FOUND', `bundle ${entry.name}: ${ROOTFS} is not a clean ext4 file system (e2fsck exit ${fsck.code})`, { hint: 'the bundle is broken; tell whoever publishes the catalog' });
      await labelAndGrow(this.deps.runner, rootfs, sizeBytes, ctx.signal);
      if (m.kernel_ref ?? entry.kernel_ref) await this.deps.ensureKernel?.((m.kernel_ref ?? entry.kernel_ref)!, ctx);
      if (ctx.signal.aborted) throw new BangerError('CANCELLED', `pull of ${entry.name} cancelled`);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.renameSync(partial, dir);
      const image: ImageInfo = {
        name: entry.name, path: path.join(dir, ROOTFS), sizeBytes: fs.statSync(path.join(dir, ROOTFS)).size, source: `bundle:${entry.url}`,
        createdAt: isoNow(this.deps.clock), boot: m.boot, hasSshd: m.has_sshd, ref: null, digest: `sha256:${entry.sha256}`, run: m.run, layers: [],
        kernelRef: m.kernel_ref ?? entry.kernel_ref,
      };
      this.deps.store.upsertImage(image);
      removeOtherVersions(this.deps.store, entry.name, dir);
      ctx.progress({ stage: 'image', message: `image ${entry.name} ready` });
      return { image, downloadedBytes: bytes, upToDate: false, skipped: [], droppedXattrs: [] };
    } catch (err) {
      fs.rmSync(partial, { recursive: true, force: true });
      // The image's own directory too, when this pull made it and nothing else is in it.
      const parent = path.dirname(dir);
      if (fs.existsSync(parent) && fs.readdirSync(parent).length === 0) fs.rmdirSync(parent);
      throw err;
    }
  }


  /** Writes a bundle of a registered image, or of a rootfs tar imported as root, and says what the catalog needs. */
  async make(params: MakeBundleParams, ctx: CallContext): Promise<MakeBundleResult> {
    if ((params.fromImage === undefined) === (params.rootfsTar === undefined)) {
      throw new BangerError('INVALID_ARGUMENT', 'make-bundle takes either --from-image or --rootfs-tar', { hint: 'banger image make-bundle --from-image NAME --out FILE, or --rootfs-tar FILE --name NAME --out FILE' });
    }
    if (params.fromImage !== undefined) {
      const image = this.deps.store.getImage(params.fromImage);
      if (!image) throw new BangerError('IMAGE_NOT_FOUND', `no image named ${params.fromImage}`, { hint: 'see banger image list' });
      const manifest: ImageManifest = {
        schemaVersion: 1, kind: 'image', name: params.name ?? image.name, rootfs: ROOTFS, kernel_ref: params.kernelRef ?? image.kernelRef,
        boot: image.boot, has_sshd: image.hasSshd, run: image.run,
      };
      return this.write(params.out, manifest, image.path, ctx);
    }
    if (!params.name) throw new BangerError('INVALID_ARGUMENT', 'make-bundle --rootfs-tar needs --name', { hint: 'the name the catalog lists the image under' });
    const tar = params.rootfsTar!;
    fs.mkdirSync(this.deps.imagesDir, { recursive: true });
    const work = fs.mkdtempSync(path.join(this.deps.imagesDir, '.bundle-'));
    try {
      ctx.progress({ stage: 'image', message: `reading ${tar}` });
      const digest = await cacheTar(tar, this.deps.blobCacheDir, ctx.signal);
      const rootfs = path.join(work, ROOTFS);
      const made = await this.deps.ops.importLayers({
        layers: [{ path: blobPath(this.deps.blobCacheDir, digest), digest, diffId: null, mediaType: 'application/vnd.oci.image.layer.v1.tar' }],
        output: rootfs, minSizeBytes: 0, user: null, devices: 'refuse',
      }, { signal: ctx.signal, progress: ctx.progress });
      const manifest: ImageManifest = {
        schemaVersion: 1, kind: 'image', name: params.name, rootfs: ROOTFS, kernel_ref: params.kernelRef ?? null, boot: made.boot, has_sshd: made.hasSshd,
        run: null,
      };
      return await this.write(params.out, manifest, rootfs, ctx);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  }

  private async write(out: string, manifest: ImageManifest, rootfs: string, ctx: CallContext): Promise<MakeBundleResult> {
    ctx.progress({ stage: 'image', message: `writing ${out} (zstd)` });
    const written = await writeBundle({ out, manifest, files: [{ name: ROOTFS, path: rootfs }], signal: ctx.signal });
    return { path: written.path, sha256: written.sha256, size: written.size, name: manifest.name, kernelRef: manifest.kernel_ref };
  }
}

/**
 * Labels a root file system as banger's guests find it (the initrd mounts LABEL=banger-root), and grows it to
 * `sizeBytes` when asked (never shrinks it). Both work on the owner's file, without root.
 */
export async function labelAndGrow(runner: ProcessRunner, rootfs: string, sizeBytes: number | undefined, signal: AbortSignal): Promise<void> {
  await runChecked(runner, 'e2label', [rootfs, ROOT_LABEL], { signal });
  if (sizeBytes === undefined || sizeBytes <= fs.statSync(rootfs).size) return;
  await runChecked(runner, 'resize2fs', ['-f', rootfs, `${Math.floor(sizeBytes / 1024)}K`], { signal });
}

function checkManifest(manifest: unknown, name: string, dir: string): ImageManifest {
  const parsed = imageManifestSchema.safeParse(manifest);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BangerError('IMAGE_NOT_FOUND', `bundle ${name}: its manifest.json is not valid (${issue.path.join('.')}: ${issue.message})`, { hint: 'the bundle is broken; tell whoever publishes the catalog' });
  }
  if (!fs.existsSync(path.join(dir, parsed.data.rootfs))) {
    throw new BangerError('IMAGE_NOT_FOUND', `bundle ${name}: its manifest names ${parsed.data.rootfs}, which the bundle does not hold`, { hint: 'the bundle is broken; tell whoever publishes the catalog' });
  }
  return parsed.data;
}

/** Copies a tar into the blob cache under its digest (bangerd-root reads layers only from there). */
async function cacheTar(file: string, cacheDir: string, signal: AbortSignal): Promise<string> {
  const hashing = new HashingStream();
  const tmp = path.join(cacheDir, 'blobs', 'sha256', `tar-${process.pid}-${Date.now()}.partial`);
  fs.mkdirSync(path.dirname(tmp), { recursive: true });
  try {
    await pipeline(fs.createReadStream(file), hashing, fs.createWriteStream(tmp), { signal });
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    if (signal.aborted) throw new BangerError('CANCELLED', 'make-bundle cancelled');
    throw new BangerError('INVALID_ARGUMENT', `cannot read the rootfs tar ${file}: ${(err as Error).message}`, { hint: 'give a tar file banger\'s user can read', cause: err });
  }
  const digest = `sha256:${hashing.hex()}`;
  fs.renameSync(tmp, blobPath(cacheDir, digest));
  return digest;
}
