// The daemon's RPC surface: method names with their parameter and result types. The SDK and the daemon both
// import this file, so a change here is a change to both ends.
import type { DoctorCheck } from './doctor.ts';
import type { ErrorCode } from './errors.ts';
import type { KillSignal } from './kill-signals.ts';
import type {
  BlobCacheEntry, ImageRegisterParams, MakeBundleParams, MakeBundleResult, KernelCatalogEntry, KernelShowResult, ImageCachePruneParams, ImageCachePruneResult, ImageInfo, ImagePullParams, ImagePullResult, ImageShowResult,
} from './image-types.ts';

export type * from './image-types.ts';

export type VmState = 'created' | 'running' | 'stopped';

export interface VmInfo {
  id: string;
  name: string;
  state: VmState;
  image: string;
  kernel: string;
  vcpus: number;
  memoryMib: number;
  diskGib: number;
  ip: string;
  mac: string;
  tap: string;
  accel: string | null;
  pid: number | null;
  createdAt: string;
  /** Outbound access through the host's NAT, applied whenever the VM runs. */
  nat: boolean;
  /** The repository shipped into the VM, if any (see `vm workspace prepare`). */
  workspace: WorkspaceInfo | null;
  /** The guest agent version the VM last said hello with; absent before its first hello. */
  agentVersion?: string;
}

/** A host loopback port served by a guest TCP port while the VM runs (`vm forward`). */
export interface ForwardInfo {
  hostPort: number;
  vmId: string;
  guestPort: number;
  createdAt: string;
}

export interface WorkspaceInfo {
  /** The host checkout it came from (its top level). */
  source: string;
  /** Where it is in the guest. */
  dir: string;
  /** The commit the guest checkout started from: what `vm workspace export` diffs against. */
  baseCommit: string;
  /** The guest-only branch it is on, when one was asked for. */
  branch: string | null;
}

export interface SshTarget {
  vmId: string;
  name: string;
  ip: string;
  user: string;
  keyPath: string;
  knownHostsPath: string;
  hostKeyAlias: string;
  /** Unix socket of an ssh connection banger keeps open to the guest; clients reuse it when it is there. */
  controlPath?: string;
  /** Network namespace the guest lives in, if any; the ssh client must run inside it. */
  netns: string | null;
  /** Where commands run by default: the workspace when the VM has one, else /root. */
  workdir: string;
}

export interface VmCreateParams {
  name?: string;
  image?: string;
  vcpus?: number;
  memoryMib?: number;
  diskGib?: number;
  /** Boot the VM after creating it (default true). */
  start?: boolean;
  /** Wait until sshd in the guest accepts banger's key (default true when starting). */
  waitSsh?: boolean;
  /** Seconds to wait for ssh; defaults to the config value. */
  sshTimeoutSec?: number;
  /** Decide KVM or TCG afresh instead of using the decision remembered for this host boot. */
  freshAccel?: boolean;
  /** Outbound access through the host's NAT (kept across restarts). */
  nat?: boolean;
  /**
   * A host checkout the VM is made with, at /root/repo: written into the work disk before the first boot, so it
   * costs no guest time (see `vm.workspace.prepare` for a running VM). Needs `start` and `waitSsh` left on.
   */
  workspace?: WorkspaceSource;
}

/** A host checkout to ship, and how. */
export interface WorkspaceSource {
  /** A directory inside the host checkout (absolute: the daemon does not share the caller's working directory). */
  path: string;
  /** Untracked, non-ignored files too (default: tracked files only). */
  includeUntracked?: boolean;
  /** Create this guest-only branch. */
  branch?: string;
  /** Start the branch here (a ref on the host) instead of at HEAD with the local changes; needs `branch`. */
  from?: string;
}

export interface VmSpecLine {
  vm: VmInfo;
  vmm: string;
}


/** An ELF vmlinux (what Firecracker boots) or a bzImage (what distributions ship; QEMU boots both). */
export type KernelFormat = 'elf' | 'bzimage';

export interface KernelInfo {
  /** Its name: host-VERSION for the host's kernel, the catalog or import name otherwise. */
  id: string;
  version: string;
  kernelPath: string;
  /** banger's initrd for it: busybox, /init and the modules a guest needs. */
  initrdPath: string;
  source: string;
  createdAt: string;
  format: KernelFormat;
}

export interface VersionInfo {
  version: string;
  /** The commit and build time stamped into dist/; null for a development run. */
  commit: string | null;
  builtAt: string | null;
  node: string;
  pid: number;
}

export interface DaemonStatus {
  version: string;
  pid: number;
  home: string;
  socket: string;
  helper: { reachable: boolean; socket: string; pid: number | null };
  netns: string | null;
  /** The `.vm` DNS server: where it listens, or why it does not. */
  dns: { listening: boolean; address: string | null; error: string | null };
  vms: { total: number; running: number };
  /** The calls that change something (vm create, image pull, ...) running now; banger update waits for none. */
  operations: string[];
  /** Byte streams into guests open now (ssh through ProxyCommand, vm exec, vm run's command). */
  sessions: number;
}

export interface VmRef {
  ref: string;
}

export interface VmLogsParams extends VmRef {
  /** Return bytes from this offset on (for following). */
  offset?: number;
}

export interface VmLogsResult {
  data: string;
  offset: number;
}

/** How `vm.workspace.prepare` runs `mise install` when the repository pins tools (it needs --nat). */
export type BootstrapMode = 'foreground' | 'background' | 'skip';

export interface WorkspacePrepareParams extends VmRef, WorkspaceSource {
  /** Default 'foreground'. */
  bootstrap?: BootstrapMode;
}

/** `mise install` in a VM's workspace, for a VM created with one (`vm.create` with `workspace`). */
export interface WorkspaceBootstrapParams extends VmRef {
  mode: Exclude<BootstrapMode, 'skip'>;
}

/** What ran or was started; `config` null when the workspace pins no tools (nothing ran). */
export interface WorkspaceBootstrapResult {
  config: string | null;
  mode: Exclude<BootstrapMode, 'skip'>;
  log: string;
}

export interface WorkspacePrepareResult {
  vm: { id: string; name: string };
  workspace: WorkspaceInfo;
  files: number;
  untracked: number;
  /** The tooling bootstrap that ran or was started, if the repository asked for one. */
  bootstrap: (WorkspaceBootstrapResult & { config: string }) | null;
}

export interface WorkspaceExportParams extends VmRef {
  /** Diff against this commit instead of the recorded base. */
  baseCommit?: string;
}

export interface WorkspaceExportResult {
  baseCommit: string;
  /** The patch, base64: it may hold any bytes. Empty when nothing changed. */
  patchBase64: string;
  bytes: number;
}

export interface VmKillParams extends VmRef {
  /** Sent to the VMM instead of a clean stop; SIGKILL when not given. */
  signal?: KillSignal;
}

export interface VmSetParams extends VmRef {
  vcpus?: number;
  memoryMib?: number;
  /** The work disk's new size; it only grows. */
  diskGib?: number;
}

export interface VmPruneParams {
  /** Only these VMs (those the user confirmed), each still only if it is not running; every VM when not given. */
  ids?: string[];
}

export interface VmPruneResult {
  deleted: Array<{ id: string; name: string }>;
  /** VMs that could not be deleted, with why (a tap bangerd-root could not remove, ...). */
  failed: Array<{ id: string; name: string; error: { code: ErrorCode; message: string; hint?: string } }>;
}

/** One listening socket in a guest, as `vm ports` shows it. */
export interface GuestPort {
  proto: 'tcp' | 'udp';
  port: number;
  /** Addresses it listens on (0.0.0.0 and :: for a dual-stack listener, shown once). */
  addresses: string[];
  /** `NAME.vm:PORT`, or `http://NAME.vm:PORT` / `https://NAME.vm:PORT` for a TCP listener that speaks it. */
  endpoint: string;
  /** What the probe found on a TCP listener. */
  kind: 'http' | 'https' | 'tcp' | 'udp';
  pid: number | null;
  process: string | null;
  command: string | null;
  /** Host loopback ports forwarded to this port (`vm forward`). */
  forwardedFrom: number[];
}

export interface VmPortsResult {
  vm: string;
  ports: GuestPort[];
  /** Every forward of the VM, including ones to a port nothing listens on yet. */
  forwards: ForwardInfo[];
}

export interface VmStatsResult {
  vm: string;
  cpus: number;
  /** Busy share of all vCPUs over a short sample, 0 to 100. */
  cpuPercent: number;
  memTotalBytes: number;
  memUsedBytes: number;
  disks: Array<{ mount: string; totalBytes: number; usedBytes: number }>;
  uptimeSec: number;
  /** The VMM process's resident memory on the host. */
  vmmRssBytes: number | null;
  agentVersion: string;
}

export interface VmHealthResult {
  vm: string;
  systemState: string;
  uptimeSec: number;
  agentVersion: string;
  /** Whether that agent is older than this banger's (it keeps working; a restart brings the new one). */
  agentOutdated: boolean;
}

export interface VmForwardParams extends VmRef {
  guestPort: number;
  /** The host loopback port; a free one is picked when not given. */
  hostPort?: number;
}

export interface VmUnforwardParams extends VmRef {
  hostPort: number;
}

/** Method name → [params, result]. */
export interface Methods {
  'vm.create': [VmCreateParams, VmInfo];
  'vm.start': [VmRef & { waitSsh?: boolean; sshTimeoutSec?: number; freshAccel?: boolean }, VmInfo];
  'vm.stop': [VmRef, VmInfo];
  'vm.delete': [VmRef, { id: string; name: string }];
  'vm.list': [Record<string, never>, VmInfo[]];
  'vm.show': [VmRef, VmInfo];
  'vm.ssh': [VmRef, SshTarget];
  'vm.logs': [VmLogsParams, VmLogsResult];
  'vm.workspace.prepare': [WorkspacePrepareParams, WorkspacePrepareResult];
  'vm.workspace.export': [WorkspaceExportParams, WorkspaceExportResult];
  'vm.workspace.bootstrap': [WorkspaceBootstrapParams, WorkspaceBootstrapResult];
  'image.list': [Record<string, never>, ImageInfo[]];
  'image.pull': [ImagePullParams, ImagePullResult];
  'image.show': [{ name: string }, ImageShowResult];
  'image.delete': [{ name: string }, { name: string }];
  'image.cache.list': [Record<string, never>, BlobCacheEntry[]];
  'image.makeBundle': [MakeBundleParams, MakeBundleResult];
  'image.register': [ImageRegisterParams, ImageInfo];
  'image.promote': [{ vm: string; name: string }, ImageInfo];
  'image.cache.prune': [ImageCachePruneParams, ImageCachePruneResult];
  'kernel.list': [Record<string, never>, KernelInfo[]];
  'kernel.catalog': [Record<string, never>, KernelCatalogEntry[]];
  'kernel.pull': [{ name: string; force?: boolean }, KernelInfo];
  'kernel.import': [{ name: string; from: string }, KernelInfo];
  'kernel.show': [{ name: string }, KernelShowResult<KernelInfo>];
  'kernel.delete': [{ name: string }, { name: string }];
  'daemon.version': [Record<string, never>, VersionInfo];
  'daemon.status': [Record<string, never>, DaemonStatus];
  'daemon.doctor': [Record<string, never>, DoctorCheck[]];
  'daemon.shutdown': [Record<string, never>, { ok: true }];
  'vm.restart': [VmRef & { waitSsh?: boolean; sshTimeoutSec?: number; freshAccel?: boolean }, VmInfo];
  'vm.kill': [VmKillParams, VmInfo];
  'vm.set': [VmSetParams, VmInfo];
  'vm.prune': [VmPruneParams, VmPruneResult];
  'vm.health': [VmRef, VmHealthResult];
  'vm.ports': [VmRef, VmPortsResult];
  'vm.stats': [VmRef, VmStatsResult];
  'vm.forward': [VmForwardParams, ForwardInfo];
  'vm.unforward': [VmUnforwardParams, ForwardInfo];
}

export type MethodName = keyof Methods;
export type ParamsOf<M extends MethodName> = Methods[M][0];
export type ResultOf<M extends MethodName> = Methods[M][1];
