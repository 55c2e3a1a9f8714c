// The download half of pulling an OCI image, in bangerd as the owner: resolve the manifest for linux/amd64,
// read the image config (how the image wants to run, and the digests of its uncompressed layers), and bring
// every layer the blob cache lacks into it, verified by digest as it streams (a blob is named by its digest
// only once it matched). Applying the layers needs root and happens in bangerd-root (image.importLayers).
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { ImageRunConfig } from '../protocol/image-types.ts';
import { formatImageRef, type ImageRef } from './oci-ref.ts';
import type { RegistryClient } from './oci-registry.ts';

/** What an image config says about running the image; the User is resolved against the image's files later. */
export type ConfigRun = Omit<ImageRunConfig, 'uid' | 'gid'>;

export interface FetchedLayer {
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
  /** The verified blob in the cache. */
  path: string;
}

export interface FetchOptions {
  registry: RegistryClient;
  /** Where verified blobs are kept, by digest (blobs/sha256/HEX). */
  cacheDir: string;
  signal?: AbortSignal;
  progress?(message: string): void;
}

/** The cache file of a blob. */
export function blobPath(cacheDir: string, digest: string): string {
  return path.join(cacheDir, 'blobs', 'sha256', digest.slice('sha256:'.length));
}

/** The manifest digest `ref` names now, and the config: the cheap part of a pull, enough to know it is current. */
export async function resolveImage(ref: ImageRef, o: FetchOptions): Promise<{ manifestDigest: string; run: ConfigRun; layers: Array<Omit<FetchedLayer, 'path'>> }> {
  const image = await o.registry.resolve(ref, undefined, o.signal);
  const config = parseImageConfig(await o.registry.blobBytes(ref, image.config, o.signal), formatImageRef(ref));
  if (config.diffIds.length !== image.layers.length) {
    throw new BangerError('IMAGE_NOT_FOUND', `${formatImageRef(ref)}: its manifest lists ${image.layers.length} layers but its config ${config.diffIds.length}`, {
      hint: 'the image is malformed; pull another one',
    });
  }
  return {
    manifestDigest: image.manifestDigest,
    run: config.run,
    layers: image.layers.map((l, i) => ({ digest: l.digest, diffId: config.diffIds[i]!, mediaType: l.mediaType, size: l.size })),
  };
}

/** Brings the layers the cache lacks into it; returns every layer's cache file and the bytes downloaded. */
export async function downloadLayers(ref: ImageRef, wanted: Array<Omit<FetchedLayer, 'path'>>, o: FetchOptions): Promise<{ layers: FetchedLayer[]; downloadedBytes: number }> {
  let downloadedBytes = 0;
  const layers: FetchedLayer[] = [];
  for (const [i, layer] of wanted.entries()) {
    const file = blobPath(o.cacheDir, layer.digest);
    layers.push({ ...layer, path: file });
    if (fs.existsSync(file) && fs.statSync(file).size === layer.size) continue;
    o.progress?.(`layer ${i + 1}/${wanted.length}: downloading ${layer.digest.slice(7, 19)} (${formatMiB(layer.size)})`);
    downloadedBytes += await o.registry.downloadBlob(ref, layer, file, o.signal);
  }
  return { layers, downloadedBytes };
}

function formatMiB(bytes: number): string {
  return bytes < 1024 ** 2 ? `${Math.ceil(bytes / 1024)} KiB` : `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

const DIFF_ID = /^sha256:[a-f0-9]{64}$/;

/**
 * The parts of an image config banger uses: it must be for linux/amd64 and list a digest per layer; what it says
 * about running the image is kept where well-formed and left out otherwise.
 */
export function parseImageConfig(bytes: Buffer, what = 'the image'): { run: ConfigRun; diffIds: string[] } {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new BangerError('IMAGE_NOT_FOUND', `${what}: its config is not JSON`, { hint: 'the image is malformed; pull another one' });
  }
  if ((doc.os !== undefined && doc.os !== 'linux') || (doc.architecture !== undefined && doc.architecture !== 'amd64')) {
    throw new BangerError('IMAGE_NOT_FOUND', `${what} is built for ${String(doc.os)}/${String(doc.architecture)}, not linux/amd64`, { hint: 'pick an image built for linux/amd64' });
  }
  const rootfs = (doc.rootfs ?? {}) as Record<string, unknown>;
  const diffIds = Array.isArray(rootfs.diff_ids) ? rootfs.diff_ids : [];
  if (!diffIds.every((d): d is string => typeof d === 'string' && DIFF_ID.test(d))) {
    throw new BangerError('IMAGE_NOT_FOUND', `${what}: its config's rootfs.diff_ids are not sha256 digests`, { hint: 'the image is malformed; pull another one' });
  }
  const c = (doc.config ?? {}) as Record<string, unknown>;
  const strings = (v: unknown): string[] | null => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? (v as string[]) : null);
  return {
    run: {
      env: (strings(c.Env) ?? []).filter((e) => /^[^=\0]+=/.test(e) && !e.includes('\0')),
      workingDir: typeof c.WorkingDir === 'string' && c.WorkingDir.startsWith('/') ? c.WorkingDir : null,
      user: typeof c.User === 'string' && c.User !== '' ? c.User : null,
      entrypoint: strings(c.Entrypoint),
      cmd: strings(c.Cmd),
    },
    diffIds,
  };
}
