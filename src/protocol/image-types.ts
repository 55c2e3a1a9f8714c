// What bangerd says about images: where one came from, how it boots, and how commands run in it.

/**
 * How an image boots: its own systemd as PID 1 (banger's agent started as a unit), or banger's agent as PID 1
 * (`banger-agent --init`) for images with no init system, such as most container images.
 */
export type ImageBoot = 'systemd' | 'agent';

/** What an OCI image's config says about running commands in it; applied by `vm run -- CMD` and `vm exec`. */
export interface ImageRunConfig {
  /** KEY=VALUE, in the image's order. */
  env: string[];
  workingDir: string | null;
  /** The config's User as written, and the uid and gid it means in the image's /etc/passwd and /etc/group. */
  user: string | null;
  uid: number;
  gid: number;
  entrypoint: string[] | null;
  cmd: string[] | null;
}

export interface ImageInfo {
  name: string;
  path: string;
  sizeBytes: number;
  /** Where it came from, for people: a recipe, an OCI reference, a bundle. */
  source: string;
  createdAt: string;
  boot: ImageBoot;
  /** Whether the image has sshd; without it `vm ssh` cannot work and commands go through the agent. */
  hasSshd: boolean;
  /** The OCI reference it was pulled from, in full, and the digest of the manifest that was applied. */
  ref: string | null;
  digest: string | null;
  run: ImageRunConfig | null;
  /** The cached layer blobs it was made from (`image cache list` tells which images use a blob). */
  layers: string[];
  /** The kernel it boots with (a catalog or imported kernel); null: the default kernel. */
  kernelRef: string | null;
}

export interface ImagePullParams {
  /** An OCI reference ([REGISTRY/]REPO[:TAG][@DIGEST]). */
  ref: string;
  /** The name to register it under; by default the repository's last component, and the tag unless latest. */
  name?: string;
  /** The root filesystem's size; by default what the files need plus room to install packages. */
  sizeBytes?: number;
}

export interface ImagePullResult {
  image: ImageInfo;
  /** Bytes downloaded by this pull; 0 when every layer was already in the cache. */
  downloadedBytes: number;
  /** The image was there already, made from the manifest the registry names now. */
  upToDate: boolean;
  /** Device nodes and FIFOs in the layers, which are not created (a VM's /dev is devtmpfs). */
  skipped: string[];
  /** Files whose extended attributes ext4 or debugfs cannot hold; the files themselves are there. */
  droppedXattrs: string[];
}

export interface ImageShowResult {
  image: ImageInfo;
  /** The VMs made from it, by name. */
  vms: string[];
}

export interface BlobCacheEntry {
  digest: string;
  sizeBytes: number;
  /** The registered images made from it. */
  images: string[];
}

export interface ImageCachePruneParams {
  /** Also the blobs registered images were made from (they are downloaded again by the next pull). */
  all?: boolean;
}

export interface ImageCachePruneResult {
  removed: number;
  freedBytes: number;
}

/** A kernel the catalog offers, and whether it is here. */
export interface KernelCatalogEntry {
  name: string;
  description: string;
  sizeBytes: number;
  state: 'pulled' | 'available';
}

export interface KernelShowResult<K> {
  kernel: K;
  /** Images that name it, and VMs that boot it. */
  images: string[];
  vms: string[];
}

export interface MakeBundleParams {
  /** Where to write the bundle (absolute). */
  out: string;
  /** The name the catalog lists it under; the image's own name with fromImage. */
  name?: string;
  kernelRef?: string;
  /** Bundle a registered image as it is... */
  fromImage?: string;
  /** ...or a rootfs tar (absolute path, e.g. `docker export` output), imported as OCI layers are. */
  rootfsTar?: string;
}

export interface MakeBundleResult {
  /** What a catalog entry needs: url (where you publish path), sha256, size, and the name and kernel_ref. */
  path: string;
  sha256: string;
  size: number;
  name: string;
  kernelRef: string | null;
}

export interface ImageRegisterParams {
  name: string;
  /** An ext4 root filesystem (absolute path); copied, sparse. */
  rootfs: string;
  kernelRef?: string;
  /** Or a kernel file and its initrd (absolute paths), registered as kernel NAME-kernel. */
  kernel?: string;
  initrd?: string;
}
