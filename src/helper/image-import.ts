// Turns OCI layers (or one rootfs tar) from bangerd's blob cache into a bootable ext4 image for the owner. Runs
// in bangerd-root, because owners and setuid bits need root: each blob is opened without following links,
// hashed again while it is read (bangerd checked it when it downloaded it, but the owner could have swapped
// the file since), decompressed by its media type after its magic bytes agree, and applied in order into a
// private directory; the tree is then inspected, packed with mkfs.ext4 -d, given its extended attributes with
// debugfs (Node has no setxattr), and handed to the owner.
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { BangerError } from '../protocol/errors.ts';
import type { ProgressEvent } from '../protocol/jsonrpc.ts';
import type { ImportLayersResult } from '../protocol/privileged-ops.ts';
import { asOwner, type Owner } from '../system/as-owner.ts';
import type { ProcessRunner } from '../system/process.ts';
import { HashingStream } from '../system/hashing-stream.ts';
import { applyLayer, type DevicePolicy } from './layer-apply.ts';
import { makeBuildDir, removeBuildDir, workRootFor, writeExt4ToFd, writeForOwner } from './ext4-image.ts';
import { bootModeOf, hasSshd, prepareForBoot, resolveUser } from './tree-inspect.ts';

export interface LayerBlob {
  path: string;
  digest: string;
  /** The digest of the uncompressed tar (the config's diff_id); null for a rootfs tar, which has none. */
  diffId: string | null;
  mediaType: string;
}

export interface ImportOptions {
  runner: ProcessRunner;
  owner: Owner;
  layers: LayerBlob[];
  output: string;
  minSizeBytes: number;
  user: string | null;
  devices: DevicePolicy;
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
  workRoot?: string;
}

export type ImportResult = ImportLayersResult;

type Compression = 'none' | 'gzip' | 'zstd';

/** How a layer's media type says it is compressed; null for what banger cannot unpack. */
export function compressionOf(mediaType: string): Compression | null {
  if (/^application\/vnd\.(oci\.image\.layer\.v1\.tar|docker\.image\.rootfs\.diff\.tar)$/.test(mediaType)) return 'none';
  if (/^application\/vnd\.(oci\.image\.layer\.v1\.tar\+gzip|docker\.image\.rootfs\.diff\.tar\.gzip)$/.test(mediaType)) return 'gzip';
  if (/^application\/vnd\.(oci\.image\.layer\.v1\.tar\+zstd|docker\.image\.rootfs\.diff\.tar\.zstd)$/.test(mediaType)) return 'zstd';
  return null;
}

const MAGIC: Record<Exclude<Compression, 'none'>, Buffer> = { gzip: Buffer.from([0x1f, 0x8b]), zstd: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) };

function layerError(layer: LayerBlob, why: string, hint = 'pull the image again; the blob cache keeps only verified blobs'): BangerError {
  return new BangerError('IMAGE_NOT_FOUND', `layer ${layer.digest.slice(0, 19)}: ${why}`, { hint });
}

/** Applies one layer blob onto `tree`, checking its digest, its diff_id and its compression's magic bytes. */
async function applyBlob(layer: LayerBlob, owner: Owner, tree: string, devices: DevicePolicy, signal: AbortSignal): Promise<Awaited<ReturnType<typeof applyLayer>>> {
  const compression = compressionOf(layer.mediaType);
  if (compression === null) throw layerError(layer, `its media type ${layer.mediaType} is not a tar, tar+gzip or tar+zstd layer`, 'banger cannot unpack this image');
  // Opened with the owner's rights: the cache is the owner's, and a directory on the way swapped for a symlink
  // to /etc then reaches only what the owner may read. O_NONBLOCK: a FIFO put there does not hang the helper.
  let fd: number;
  try {
    fd = asOwner(owner, () => fs.openSync(layer.path, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK));
  } catch (err) {
    throw layerError(layer, `its cache entry cannot be opened by uid ${owner.uid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!fs.fstatSync(fd).isFile()) {
    fs.closeSync(fd);
    throw layerError(layer, 'its cache entry is not a regular file');
  }
  if (compression !== 'none') {
    const head = Buffer.alloc(4);
    const n = fs.readSync(fd, head, 0, 4, 0);
    if (!head.subarray(0, n).subarray(0, MAGIC[compression].length).equals(MAGIC[compression])) {
      fs.closeSync(fd);
      throw layerError(layer, `its media type says ${compression}, but its bytes are not ${compression}`, 'the image is malformed; pull another one');
    }
  }
  const packed = new HashingStream();
  const unpacked = new HashingStream();
  const tar = new PassThrough();
  const stages: Array<NodeJS.ReadableStream | NodeJS.WritableStream> = [fs.createReadStream('', { fd, highWaterMark: 1 << 20 }), packed];
  // 1 MiB output chunks: with the default 16 KiB, decompressing a layer takes twice as long.
  if (compression === 'gzip') stages.push(createGunzip({ chunkSize: 1 << 20 }));
  if (compression === 'zstd') stages.push(createZstdDecompress({ chunkSize: 1 << 20 }));
  stages.push(unpacked, tar);
  const flowing = pipeline(stages as [Readable, ...NodeJS.WritableStream[]], { signal }).catch((err: unknown) => {
    tar.destroy(err as Error);
    throw err;
  });
  let applied: Awaited<ReturnType<typeof applyLayer>>;
  try {
    applied = await applyLayer(tar, tree, { ownership: true, devices });
    // What follows the archive's end (zero blocks, padding) still counts towards the digests.
    tar.resume();
    await flowing;
  } catch (err) {
    tar.destroy();
    await flowing.catch(() => undefined);
    if (signal.aborted) throw new BangerError('CANCELLED', 'image import cancelled');
    if (err instanceof BangerError) throw err;
    throw layerError(layer, `it could not be read: ${(err as Error).message}`, 'the image is malformed; pull another one');
  }
  const gotPacked = `sha256:${packed.hex()}`;
  if (gotPacked !== layer.digest) throw layerError(layer, `its cached bytes hash to ${gotPacked}`);
  const gotUnpacked = `sha256:${unpacked.hex()}`;
  if (layer.diffId !== null && gotUnpacked !== layer.diffId) {
    throw layerError(layer, `it unpacks to ${gotUnpacked}, but the image config says ${layer.diffId}`, 'the image is malformed; pull another one');
  }
  return applied;
}

/** debugfs quotes with "..." and has no escapes: such paths, and names with odd characters, cannot be given. */
const XATTR_NAME = /^(user|trusted|security|system)\.[A-Za-z0-9_.@+-]{1,200}$/;

/** Sets the collected xattrs on the image open on `fd` in one debugfs run; returns the paths whose xattrs were not set. */
async function setXattrs(runner: ProcessRunner, workDir: string, fd: number, xattrs: Map<string, Map<string, Buffer>>, signal: AbortSignal): Promise<string[]> {
  const dropped: string[] = [];
  const lines: string[] = [];
  const valuesDir = path.join(workDir, 'xattrs');
  fs.mkdirSync(valuesDir);
  let n = 0;
  for (const [rel, attrs] of xattrs) {
    if (/["\n\r\\]/.test(rel)) {
      dropped.push(rel);
      continue;
    }
    for (const [name, value] of attrs) {
      if (!XATTR_NAME.test(name) || value.length > 3000) {
        dropped.push(`${rel} (${name})`);
        continue;
      }
      const file = path.join(valuesDir, String(n++));
      fs.writeFileSync(file, value);
      lines.push(`ea_set -f ${file} "/${rel}" ${name}`);
    }
  }
  if (lines.length === 0) return dropped;
  const commands = path.join(workDir, 'xattrs.debugfs');
  fs.writeFileSync(commands, `${lines.join('\n')}\n`);
  const r = await runner.run('debugfs', ['-w', '-f', commands, '/dev/stdin'], { signal, stdinFd: fd });
  // debugfs exits 0 whatever its commands did; each failure is a line naming the command on stderr.
  for (const line of r.stderr.split('\n')) {
    if (/^ea_set/.test(line)) dropped.push(line.trim());
  }
  if (r.code !== 0) throw new BangerError('TOOL_FAILED', `debugfs could not set extended attributes (exit ${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' ')}`);
  return dropped;
}

export async function importLayers(o: ImportOptions): Promise<ImportResult> {
  // Layers unpack to about three times their compressed size (a tar layer, uncompressed, to about its size).
  // Looked at with the owner's rights, as the blobs are read (applyBlob); one that cannot be is reported there.
  const sizeOf = (file: string): number => {
    try {
      return asOwner(o.owner, () => fs.lstatSync(file).size);
    } catch {
      return 0;
    }
  };
  const estimate = o.layers.reduce((n, l) => n + sizeOf(l.path) * (compressionOf(l.mediaType) === 'none' ? 1 : 3), 0);
  const workDir = makeBuildDir(o.workRoot ?? workRootFor(estimate));
  const tree = path.join(workDir, 'root');
  try {
    fs.mkdirSync(tree, { mode: 0o755 });
    const skipped: string[] = [];
    const xattrs = new Map<string, Map<string, Buffer>>();
    for (const [i, layer] of o.layers.entries()) {
      o.progress({ stage: 'image', message: `applying layer ${i + 1}/${o.layers.length}` });
      const applied = await applyBlob(layer, o.owner, tree, o.devices, o.signal);
      skipped.push(...applied.skipped);
      // A path this layer wrote again lost what an earlier layer set on it.
      for (const rel of applied.written) xattrs.delete(rel);
      for (const [rel, attrs] of applied.xattrs) xattrs.set(rel, attrs);
    }
    prepareForBoot(tree);
    // Whiteouts may have removed a path after its xattrs were collected.
    for (const rel of [...xattrs.keys()]) {
      try {
        if (fs.lstatSync(path.join(tree, rel)).isSymbolicLink()) xattrs.delete(rel);
      } catch {
        xattrs.delete(rel);
      }
    }
    const boot = bootModeOf(tree);
    const sshd = hasSshd(tree);
    const { uid, gid } = resolveUser(tree, o.user);
    o.progress({ stage: 'image', message: 'writing the ext4 image' });
    let sizeBytes = 0;
    let droppedXattrs: string[] = [];
    await writeForOwner(o.owner, o.output, async (fd) => {
      sizeBytes = await writeExt4ToFd(o.runner, tree, fd, o.minSizeBytes, o.signal);
      droppedXattrs = await setXattrs(o.runner, workDir, fd, xattrs, o.signal);
    });
    return { sizeBytes, boot, hasSshd: sshd, uid, gid, skipped, droppedXattrs };
  } finally {
    await removeBuildDir(o.runner, workDir);
  }
}
