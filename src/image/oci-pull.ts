// Pulling an OCI image into a root tree: resolve the manifest, download the layers that the blob cache lacks
// (verified by digest as they stream; a blob is named by its digest only once it matched), then apply them in
// order, decompressed by media type. What the image's config says about running it (Env, WorkingDir, User,
// Entrypoint, Cmd) comes back for `vm run` and `vm exec` to apply.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { BangerError } from '../protocol/errors.ts';
import { applyLayer, type ApplyResult } from './layer-apply.ts';
import { formatImageRef, type ImageRef } from './oci-ref.ts';
import type { Descriptor, RegistryClient } from './oci-registry.ts';

export interface ImageRunConfig {
  env: string[];
  workingDir: string | null;
  user: string | null;
  entrypoint: string[] | null;
  cmd: string[] | null;
}

export interface PullResult {
  manifestDigest: string;
  config: ImageRunConfig;
  layers: number;
  /** Bytes downloaded now (0 when every layer was cached). */
  downloadedBytes: number;
  skipped: string[];
  xattrs: ApplyResult['xattrs'];
}

export interface PullOptions {
  registry: RegistryClient;
  /** Where verified blobs are kept, by digest (blobs/sha256/HEX). */
  cacheDir: string;
  /** The tree to apply the layers onto (created if missing). */
  root: string;
  ownership: boolean;
  signal?: AbortSignal;
  progress?(message: string): void;
}

/** The cache file of a blob. */
export function blobPath(cacheDir: string, digest: string): string {
  return path.join(cacheDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

export async function pullImage(ref: ImageRef, o: PullOptions): Promise<PullResult> {
  const image = await o.registry.resolve(ref, undefined, o.signal);
  const config = parseRunConfig(await o.registry.blobBytes(ref, image.config, o.signal));
  let downloadedBytes = 0;
  for (const [i, layer] of image.layers.entries()) {
    const file = blobPath(o.cacheDir, layer.digest);
    if (fs.existsSync(file) && fs.statSync(file).size === layer.size) continue;
    o.progress?.(`layer ${i + 1}/${image.layers.length}: downloading ${layer.digest.slice(7, 19)} (${layer.size} bytes)`);
    downloadedBytes += await o.registry.downloadBlob(ref, layer, file, o.signal);
  }
  fs.mkdirSync(o.root, { recursive: true, mode: 0o755 });
  const skipped: string[] = [];
  const xattrs: ApplyResult['xattrs'] = new Map();
  for (const [i, layer] of image.layers.entries()) {
    o.progress?.(`layer ${i + 1}/${image.layers.length}: applying`);
    const applied = await applyLayer(decompressed(layer, fs.createReadStream(blobPath(o.cacheDir, layer.digest)), ref), o.root, { ownership: o.ownership });
    skipped.push(...applied.skipped);
    for (const [p, x] of applied.xattrs) xattrs.set(p, x);
  }
  return { manifestDigest: image.manifestDigest, config, layers: image.layers.length, downloadedBytes, skipped, xattrs };
}

/** The layer's tar, through gzip or zstd as its media type says. */
function decompressed(layer: Descriptor, raw: Readable, ref: ImageRef): Readable {
  const t = layer.mediaType;
  if (t.endsWith('.tar') || t === 'application/vnd.oci.image.layer.v1.tar') return raw;
  if (t.endsWith('+gzip') || t.endsWith('.tar.gzip') || t === 'application/vnd.docker.image.rootfs.diff.tar.gzip') return raw.pipe(createGunzip());
  if (t.endsWith('+zstd')) return raw.pipe(createZstdDecompress());
  throw new BangerError('IMAGE_NOT_FOUND', `${formatImageRef(ref)} has a layer of media type ${t}, which banger cannot unpack`, {
    hint: 'layers must be tar, tar+gzip or tar+zstd',
  });
}

/** The parts of an image config that say how to run it; anything malformed is left out. */
export function parseRunConfig(bytes: Buffer): ImageRunConfig {
  let doc: Record<string, unknown> = {};
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new BangerError('IMAGE_NOT_FOUND', 'the image config is not JSON');
  }
  const c = (doc.config ?? {}) as Record<string, unknown>;
  const strings = (v: unknown): string[] | null => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null);
  return {
    env: strings(c.Env) ?? [],
    workingDir: typeof c.WorkingDir === 'string' && c.WorkingDir !== '' ? c.WorkingDir : null,
    user: typeof c.User === 'string' && c.User !== '' ? c.User : null,
    entrypoint: strings(c.Entrypoint),
    cmd: strings(c.Cmd),
  };
}
