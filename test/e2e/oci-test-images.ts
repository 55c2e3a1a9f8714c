// Images for e2e tests of `banger image pull`, built here and pushed over the registry's HTTP API: layers are
// tars written with tar-stream (fixed mtimes and owners, so the same layer has the same digest every run),
// compressed with gzip or zstd, described by an OCI or Docker manifest whose config carries the diff_ids. The
// root filesystem is Debian's static busybox; nothing here boots by itself (no /sbin/init, no sshd), so banger
// supplies those. pushWithSkopeo is the one image made by real tools (umoci and skopeo).
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { promisify } from 'node:util';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { REGISTRY_PASSWORD, REGISTRY_USER, type TestRegistry } from './oci-registry-fixture.ts';

export const BUSYBOX_BINARY = '/bin/busybox';

export const MEDIA_TYPES = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
} as const;

/** What busyboxRootfsLayer() holds beyond bin/busybox and its applets, for tests to check after a pull. */
export const BUSYBOX_ROOTFS = {
  /** Mode 04755, owned by root. */
  setuidFile: '/usr/bin/setuid-probe',
  /** Two names of one file (a tar hard link: the second entry links to the first). */
  hardLink: { target: '/etc/issue', link: '/etc/issue.hardlink' },
  /** A symlink to /bin/busybox, like every applet. */
  shell: '/bin/sh',
  /** Present in the layer; banger must remove it. */
  dockerenv: '/.dockerenv',
  /** The unprivileged user of /etc/passwd, with home /home/app. */
  user: { name: 'app', uid: 1000, gid: 1000, home: '/home/app' },
} as const;

/** Where layeredImageLayers() leaves things once all three layers are applied. */
export const LAYERED_RESULT = {
  /** /opt was made opaque by the third layer: only `new` is left (keep and old are gone). */
  optEntries: ['new'],
  /** /var/keep lost `gone` to a whiteout; `stay` remains. */
  varKeepEntries: ['stay'],
} as const;

/** The run settings of test/config (configImageLayers); WorkingDir exists in the image, owned by app. */
export const CONFIG_IMAGE = {
  Env: ['FOO=bar', 'PATH=/bin:/usr/bin'],
  WorkingDir: '/opt/work',
  User: 'app',
  Entrypoint: ['/bin/sh', '-c'],
  Cmd: ['echo hello from the config image'],
} as const;

export type Compression = 'gzip' | 'zstd' | 'none';
export type MediaTypes = 'oci' | 'docker';

/** One tar entry; owner root:root and mode 0644 (0755 for dirs) unless given. */
export type LayerEntry =
  | { type: 'dir'; name: string; mode?: number; uid?: number; gid?: number }
  | { type: 'file'; name: string; data: Buffer | string; mode?: number; uid?: number; gid?: number }
  | { type: 'symlink'; name: string; target: string }
  | { type: 'link'; name: string; target: string };

/** 2024-01-01T00:00:00Z, for every entry, so layers are byte-for-byte reproducible. */
const MTIME = new Date(1_704_067_200_000);

/** An uncompressed tar of `entries`, in order (names relative, as image layers have them). */
export async function tarLayer(entries: readonly LayerEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const out = buffer(pack);
  for (const e of entries) {
    const base = { name: e.name, mtime: MTIME, uname: '', gname: '' };
    if (e.type === 'dir') pack.entry({ ...base, type: 'directory', mode: e.mode ?? 0o755, uid: e.uid ?? 0, gid: e.gid ?? 0 });
    else if (e.type === 'file') {
      const data = typeof e.data === 'string' ? Buffer.from(e.data) : e.data;
      pack.entry({ ...base, type: 'file', mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0, size: data.length }, data);
    } else pack.entry({ ...base, type: e.type, mode: e.type === 'symlink' ? 0o777 : 0o644, uid: 0, gid: 0, linkname: e.target });
  }
  pack.finalize();
  return out;
}

/** `tar` compressed as a layer blob; zstd with the defaults (one thread: nbWorkers is never set). */
export function compressLayer(tar: Buffer, compression: Compression): Buffer {
  switch (compression) {
    case 'gzip': return gzipSync(tar);
    case 'zstd': return zstdCompressSync(tar);
    case 'none': return tar;
  }
}

/**
 * A root filesystem of static busybox with a symlink per applet, passwd and group with root and app (1000:1000),
 * a 1777 /tmp, a setuid file, a hard link and a /.dockerenv (see BUSYBOX_ROOTFS).
 */
export async function busyboxRootfsLayer(): Promise<Buffer> {
  if (!fs.existsSync(BUSYBOX_BINARY)) throw new Error(`${BUSYBOX_BINARY} is missing: install Debian's busybox-static package`);
  const applets = execFileSync(BUSYBOX_BINARY, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => /^[\w.[-]+$/.test(a) && a !== 'busybox');
  const { user } = BUSYBOX_ROOTFS;
  return tarLayer([
    { type: 'file', name: '.dockerenv', data: '' },
    { type: 'dir', name: 'bin' },
    { type: 'file', name: 'bin/busybox', data: fs.readFileSync(BUSYBOX_BINARY), mode: 0o755 },
    ...applets.map((a): LayerEntry => ({ type: 'symlink', name: `bin/${a}`, target: 'busybox' })),
    { type: 'dir', name: 'dev' },
    { type: 'dir', name: 'etc' },
    { type: 'file', name: 'etc/passwd', data: `root:x:0:0:root:/root:/bin/sh\n${user.name}:x:${user.uid}:${user.gid}:app:${user.home}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n` },
    { type: 'file', name: 'etc/group', data: `root:x:0:\n${user.name}:x:${user.gid}:\nnogroup:x:65534:\n` },
    { type: 'file', name: 'etc/issue', data: 'banger test image\n' },
    { type: 'link', name: 'etc/issue.hardlink', target: 'etc/issue' },
    { type: 'dir', name: 'home' },
    { type: 'dir', name: 'home/app', mode: 0o755, uid: user.uid, gid: user.gid },
    { type: 'dir', name: 'root', mode: 0o700 },
    { type: 'dir', name: 'tmp', mode: 0o1777 },
    { type: 'dir', name: 'usr' },
    { type: 'dir', name: 'usr/bin' },
    { type: 'file', name: 'usr/bin/setuid-probe', data: '#!/bin/sh\nid -u\n', mode: 0o4755 },
    { type: 'dir', name: 'var' },
  ]);
}

/**
 * Three layers: busybox; then /opt/keep, /opt/old and /var/keep/{gone,stay}; then an opaque /opt
 * (opt/.wh..wh..opq) with opt/new, and a whiteout of /var/keep/gone (see LAYERED_RESULT).
 */
export async function layeredImageLayers(): Promise<Buffer[]> {
  return [
    await busyboxRootfsLayer(),
    await tarLayer([
      { type: 'dir', name: 'opt' },
      { type: 'file', name: 'opt/keep', data: 'kept until the opaque layer\n' },
      { type: 'dir', name: 'opt/old' },
      { type: 'file', name: 'opt/old/file', data: 'old\n' },
      { type: 'dir', name: 'var/keep' },
      { type: 'file', name: 'var/keep/gone', data: 'whited out by the next layer\n' },
      { type: 'file', name: 'var/keep/stay', data: 'stays\n' },
    ]),
    await tarLayer([
      { type: 'dir', name: 'opt' },
      { type: 'file', name: 'opt/.wh..wh..opq', data: '' },
      { type: 'file', name: 'opt/new', data: 'new\n' },
      { type: 'dir', name: 'var/keep' },
      { type: 'file', name: 'var/keep/.wh.gone', data: '' },
    ]),
  ];
}

/** busybox, then a layer with /opt/work owned by app (the WorkingDir of CONFIG_IMAGE). */
export async function configImageLayers(): Promise<Buffer[]> {
  const { uid, gid } = BUSYBOX_ROOTFS.user;
  return [
    await busyboxRootfsLayer(),
    await tarLayer([
      { type: 'dir', name: 'opt' },
      { type: 'dir', name: 'opt/work', uid, gid },
      { type: 'file', name: 'opt/work/README', data: 'the working directory of test/config\n', uid, gid },
    ]),
  ];
}

export interface ImageRunConfig {
  Env?: readonly string[];
  WorkingDir?: string;
  User?: string;
  Entrypoint?: readonly string[];
  Cmd?: readonly string[];
}

/** A layer as pushImage takes it: an uncompressed tar, or one with its own compression or media type. */
export type LayerInput = Buffer | { tar: Buffer; compression?: Compression; mediaType?: string };

export interface PushImageOptions {
  /** Uncompressed tars, bottom first. */
  layers: readonly LayerInput[];
  config?: ImageRunConfig;
  /** oci (the default): OCI manifest, config and layer types; docker: Docker v2 schema 2. */
  mediaTypes?: MediaTypes;
  /** For every layer without its own (default gzip). */
  compression?: Compression;
  /** The config's architecture (default amd64), to push an image whose config says otherwise. */
  architecture?: string;
}

export interface PushedLayer {
  digest: string;
  /** sha256 of the uncompressed tar, as in the config's rootfs.diff_ids. */
  diffId: string;
  /** Compressed size, as in the manifest. */
  size: number;
  mediaType: string;
}

export interface PushedImage {
  /** host/repo:tag */
  ref: string;
  manifestDigest: string;
  manifestSize: number;
  manifestMediaType: string;
  configDigest: string;
  layers: PushedLayer[];
}

/** Pushes every layer, the config and the manifest of one linux image to `registry` as `repo:tag`. */
export async function pushImage(registry: TestRegistry, repo: string, tag: string, options: PushImageOptions): Promise<PushedImage> {
  const docker = options.mediaTypes === 'docker';
  const layers: PushedLayer[] = [];
  for (const input of options.layers) {
    const { tar, compression = options.compression ?? 'gzip', mediaType } = Buffer.isBuffer(input) ? { tar: input } : input;
    const blob = compressLayer(tar, compression);
    layers.push({
      digest: await registry.pushBlob(repo, blob),
      diffId: sha256(tar),
      size: blob.length,
      mediaType: mediaType ?? layerMediaType(compression, docker),
    });
  }
  const config = Buffer.from(JSON.stringify({
    created: MTIME.toISOString(),
    architecture: options.architecture ?? 'amd64',
    os: 'linux',
    config: options.config ?? {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({ created: MTIME.toISOString(), created_by: 'banger test image' })),
  }));
  const configDigest = await registry.pushBlob(repo, config);
  const manifestMediaType = docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest;
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: manifestMediaType,
    config: { mediaType: docker ? MEDIA_TYPES.dockerConfig : MEDIA_TYPES.ociConfig, digest: configDigest, size: config.length },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  }));
  const manifestDigest = await registry.pushManifest(repo, tag, manifestMediaType, manifest);
  return { ref: registry.ref(repo, tag), manifestDigest, manifestSize: manifest.length, manifestMediaType, configDigest, layers };
}

function layerMediaType(compression: Compression, docker: boolean): string {
  switch (compression) {
    case 'gzip': return docker ? MEDIA_TYPES.dockerLayerGzip : MEDIA_TYPES.ociLayerGzip;
    case 'zstd': return docker ? MEDIA_TYPES.dockerLayerZstd : MEDIA_TYPES.ociLayerZstd;
    // Docker has no type for an uncompressed layer; registries and clients take the OCI one.
    case 'none': return MEDIA_TYPES.ociLayer;
  }
}

export interface IndexEntry {
  manifestDigest: string;
  size: number;
  platform: { os: string; architecture: string; variant?: string };
  /** The manifest's media type (default: the index kind's manifest type). */
  mediaType?: string;
}

export interface PushedIndex {
  /** host/repo:tag */
  ref: string;
  digest: string;
  size: number;
  mediaType: string;
}

/**
 * Pushes an OCI index or a Docker manifest list of `entries` as `repo:tag`. The manifests must already be in
 * `repo` (the registry checks); an entry may claim any platform, so one real manifest can stand for several.
 */
export async function pushIndex(registry: TestRegistry, repo: string, tag: string, entries: readonly IndexEntry[], mediaTypes: MediaTypes = 'oci'): Promise<PushedIndex> {
  const docker = mediaTypes === 'docker';
  const mediaType = docker ? MEDIA_TYPES.dockerList : MEDIA_TYPES.ociIndex;
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType,
    manifests: entries.map((e) => ({
      mediaType: e.mediaType ?? (docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest),
      digest: e.manifestDigest,
      size: e.size,
      platform: e.platform,
    })),
  }));
  const digest = await registry.pushManifest(repo, tag, mediaType, body);
  return { ref: registry.ref(repo, tag), digest, size: body.length, mediaType };
}

/** The index entry of a pushed image, claiming `platform` (linux/amd64 unless given). */
export function indexEntry(image: PushedImage, platform: IndexEntry['platform'] = { os: 'linux', architecture: 'amd64' }): IndexEntry {
  return { manifestDigest: image.manifestDigest, size: image.manifestSize, platform, mediaType: image.manifestMediaType };
}

export interface StandardImages {
  /** busybox alone, OCI, gzip; Cmd /bin/sh. */
  busybox: PushedImage;
  /** Three layers with an opaque dir and a whiteout (LAYERED_RESULT), OCI, gzip. */
  layered: PushedImage;
  /** The layered image with zstd layers. */
  zstd: PushedImage;
  /** busybox with Docker v2 media types. */
  docker: PushedImage;
  /** Env, WorkingDir, User, Entrypoint and Cmd set (CONFIG_IMAGE). */
  config: PushedImage;
  /** OCI index: linux/amd64 is test/multi's copy of busybox, linux/arm64 points at the layered image. */
  multi: PushedIndex;
  /** The same as a Docker manifest list of Docker manifests. */
  dockerList: PushedIndex;
  /** An OCI index of linux/arm64 and linux/s390x only (both real manifests, so only the platform is wrong). */
  noAmd64: PushedIndex;
  /** The manifest behind multi's linux/amd64 entry. */
  multiAmd64: PushedImage;
}

/**
 * Pushes every standard image: test/busybox, test/layered, test/zstd, test/docker, test/config, test/multi,
 * test/dockerlist and test/noamd64, each :latest.
 */
export async function pushStandardImages(registry: TestRegistry): Promise<StandardImages> {
  const busyboxTar = await busyboxRootfsLayer();
  const layered = await layeredImageLayers();
  const shell = { Env: ['PATH=/bin:/usr/bin'], Cmd: ['/bin/sh'] };
  const busybox = await pushImage(registry, 'test/busybox', 'latest', { layers: [busyboxTar], config: shell });
  const layeredImage = await pushImage(registry, 'test/layered', 'latest', { layers: layered, config: shell });
  const zstd = await pushImage(registry, 'test/zstd', 'latest', { layers: layered, config: shell, compression: 'zstd' });
  const docker = await pushImage(registry, 'test/docker', 'latest', { layers: [busyboxTar], config: shell, mediaTypes: 'docker' });
  const config = await pushImage(registry, 'test/config', 'latest', { layers: await configImageLayers(), config: CONFIG_IMAGE });

  // An index may only name manifests of its own repository, so each index repository gets its own copies.
  const multiAmd64 = await pushImage(registry, 'test/multi', 'amd64', { layers: [busyboxTar], config: shell });
  const multiArm64 = await pushImage(registry, 'test/multi', 'arm64', { layers: layered, config: shell });
  const multi = await pushIndex(registry, 'test/multi', 'latest', [
    indexEntry(multiArm64, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    indexEntry(multiAmd64),
  ]);
  const listAmd64 = await pushImage(registry, 'test/dockerlist', 'amd64', { layers: [busyboxTar], config: shell, mediaTypes: 'docker' });
  const dockerList = await pushIndex(registry, 'test/dockerlist', 'latest', [
    indexEntry(listAmd64, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    indexEntry(listAmd64),
  ], 'docker');
  const other = await pushImage(registry, 'test/noamd64', 'single', { layers: [busyboxTar], config: shell });
  const noAmd64 = await pushIndex(registry, 'test/noamd64', 'latest', [
    indexEntry(other, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    indexEntry(other, { os: 'linux', architecture: 's390x' }),
  ]);
  return { busybox, layered: layeredImage, zstd, docker, config, multi, dockerList, noAmd64, multiAmd64 };
}

/**
 * The busybox image packed by umoci and pushed by skopeo as `repo:tag`, for one image built by real tools (OCI,
 * gzip, Cmd /bin/sh). skopeo runs in its own mount namespace with a tmpfs on /var/lib/containers, so the blob-info
 * cache it keeps as root (/var/lib/containers/cache) is not left on the host.
 */
export async function pushWithSkopeo(registry: TestRegistry, repo: string, tag: string): Promise<{ ref: string }> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-umoci-'));
  try {
    const layout = path.join(work, 'layout');
    const bundle = path.join(work, 'bundle');
    // Asynchronously: with token auth the token server runs in this process and must answer skopeo meanwhile.
    const run = async (command: string, args: string[]): Promise<void> => {
      await promisify(execFile)(command, args, { cwd: work, timeout: 120_000 });
    };
    await run('umoci', ['init', '--layout', layout]);
    await run('umoci', ['new', '--image', `${layout}:${tag}`]);
    await run('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle]);
    const tarFile = path.join(work, 'rootfs.tar');
    fs.writeFileSync(tarFile, await busyboxRootfsLayer());
    await run('tar', ['--numeric-owner', '-C', path.join(bundle, 'rootfs'), '-xpf', tarFile]);
    await run('umoci', ['repack', '--image', `${layout}:${tag}`, bundle]);
    await run('umoci', ['config', '--image', `${layout}:${tag}`, '--config.cmd', '/bin/sh', '--config.env', 'PATH=/bin:/usr/bin', '--os', 'linux', '--architecture', 'amd64']);
    const creds = registry.auth === 'none' ? [] : ['--dest-creds', `${REGISTRY_USER}:${REGISTRY_PASSWORD}`];
    const copy = ['skopeo', 'copy', '--quiet', '--dest-tls-verify=false', ...creds, `oci:${layout}:${tag}`, `docker://${registry.host}/${repo}:${tag}`];
    // mkdir -p inside the namespace would still create the mount point on the host when it is missing, so the
    // tmpfs goes over /var/lib/containers only when it exists, else over /var/lib (skopeo reads nothing there).
    const mountPoint = fs.existsSync('/var/lib/containers') ? '/var/lib/containers' : '/var/lib';
    await run('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs banger-skopeo "$1" && shift && exec "$@"', 'sh', mountPoint, ...copy]);
    return { ref: registry.ref(repo, tag) };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
