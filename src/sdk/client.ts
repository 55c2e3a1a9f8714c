// The typed client for bangerd. The CLI is its first user; agents import it as `banger`.
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import { connect as connectSocket, type ProgressEvent, type RpcConnection } from '../protocol/jsonrpc.ts';
import type {
  BlobCacheEntry, ImageRegisterParams, MakeBundleParams, MakeBundleResult, KernelCatalogEntry, KernelShowResult, DaemonStatus, ImageCachePruneParams, ImageCachePruneResult, ImageInfo, ImagePullParams, ImagePullResult, ImageShowResult, KernelInfo, MethodName, ParamsOf, ResultOf, SshTarget, VersionInfo, VmCreateParams, VmInfo, VmLogsResult,
  WorkspaceBootstrapParams, WorkspaceBootstrapResult, WorkspaceExportParams, WorkspaceExportResult, WorkspacePrepareParams, WorkspacePrepareResult,
} from '../protocol/methods.ts';
import { resolvePaths } from '../system/paths.ts';
import type { KillSignal } from '../protocol/kill-signals.ts';
import type { DoctorCheck } from '../protocol/doctor.ts';
import type { ForwardInfo, VmHealthResult, VmPortsResult, VmPruneResult, VmSetParams, VmStatsResult } from '../protocol/methods.ts';

export interface CallOptions {
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
}

export interface ConnectOptions {
  /** Socket of bangerd; defaults to the one for BANGER_HOME, else /run/banger (root) or the state dir's run/. */
  socketPath?: string;
  /** Start bangerd (and bangerd-root when running as root) if nothing answers. Default true. */
  autoStart?: boolean;
  /** Receives notes such as "started bangerd" or what to run for the helper. */
  onNotice?: (message: string) => void;
}

/** A connection to bangerd with one typed method per RPC. */
export class BangerClient {
  private readonly connection: RpcConnection;

  constructor(connection: RpcConnection) {
    this.connection = connection;
  }

  /** Low-level typed call; prefer the named methods. */
  call<M extends MethodName>(method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    return this.connection.call<ResultOf<M>>(method, params, options);
  }

  /** Creates a VM and, unless `start: false`, boots it and waits for ssh. */
  createVm(params: VmCreateParams, options?: CallOptions): Promise<VmInfo> { return this.call('vm.create', params, options); }
  /** Boots a stopped VM. */
  startVm(ref: string, params: { waitSsh?: boolean; sshTimeoutSec?: number; freshAccel?: boolean } = {}, options?: CallOptions): Promise<VmInfo> { return this.call('vm.start', { ref, ...params }, options); }
  /** Syncs the guest's disks and stops its VMM. */
  stopVm(ref: string, options?: CallOptions): Promise<VmInfo> { return this.call('vm.stop', { ref }, options); }
  /** Stops a VM if needed and removes everything it had. */
  deleteVm(ref: string, options?: CallOptions): Promise<{ id: string; name: string }> { return this.call('vm.delete', { ref }, options); }
  /** All VMs. */
  listVms(): Promise<VmInfo[]> { return this.call('vm.list', {}); }
  /** One VM by name, id or id prefix. */
  showVm(ref: string): Promise<VmInfo> { return this.call('vm.show', { ref }); }
  /** What an ssh client needs to reach a running VM (use with `sshCommand`). */
  sshTarget(ref: string): Promise<SshTarget> { return this.call('vm.ssh', { ref }); }
  /** Guest console output from `offset` on. */
  vmLogs(ref: string, offset = 0): Promise<VmLogsResult> { return this.call('vm.logs', { ref, offset }); }
  /** Ships a host checkout into a running VM at /root/repo and records its base commit (then runs its mise bootstrap). */
  prepareWorkspace(params: WorkspacePrepareParams, options?: CallOptions): Promise<WorkspacePrepareResult> { return this.call('vm.workspace.prepare', params, options); }
  /** `mise install` in the workspace a VM was created with (waited for, or started in the background). */
  bootstrapWorkspace(params: WorkspaceBootstrapParams, options?: CallOptions): Promise<WorkspaceBootstrapResult> { return this.call('vm.workspace.bootstrap', params, options); }
  /** Everything that changed in the VM's workspace since its base commit, as one binary patch (base64). */
  exportWorkspace(params: WorkspaceExportParams, options?: CallOptions): Promise<WorkspaceExportResult> { return this.call('vm.workspace.export', params, options); }
  /** Stops a VM (if running) and boots it again, waiting for ssh. */
  restartVm(ref: string, params: { waitSsh?: boolean; sshTimeoutSec?: number; freshAccel?: boolean } = {}, options?: CallOptions): Promise<VmInfo> { return this.call('vm.restart', { ref, ...params }, options); }
  /** Signals a VM's VMM (SIGKILL by default) without syncing the guest; the VM ends stopped. */
  killVm(ref: string, signal?: KillSignal, options?: CallOptions): Promise<VmInfo> { return this.call('vm.kill', { ref, ...(signal ? { signal } : {}) }, options); }
  /** Changes a stopped VM's vCPUs, memory or (only growing) work disk; they apply from its next boot. */
  setVm(ref: string, size: Omit<VmSetParams, 'ref'>, options?: CallOptions): Promise<VmInfo> { return this.call('vm.set', { ref, ...size }, options); }
  /** Deletes every VM that is not running, or only those of `ids` that are not. */
  pruneVms(ids?: string[], options?: CallOptions): Promise<VmPruneResult> { return this.call('vm.prune', ids ? { ids } : {}, options); }
  /** The guest agent's view of a running VM: system state, uptime, agent version. */
  vmHealth(ref: string, options?: CallOptions): Promise<VmHealthResult> { return this.call('vm.health', { ref }, options); }
  /** Listening sockets in a running VM (HTTP and HTTPS listeners marked), and its forwards. */
  vmPorts(ref: string, options?: CallOptions): Promise<VmPortsResult> { return this.call('vm.ports', { ref }, options); }
  /** CPU, memory, disk use and uptime of a running VM, and its VMM's host memory. */
  vmStats(ref: string, options?: CallOptions): Promise<VmStatsResult> { return this.call('vm.stats', { ref }, options); }
  /** Serves a guest TCP port on a host loopback port (a free one when `hostPort` is not given) while the VM runs. */
  forwardPort(ref: string, guestPort: number, hostPort?: number, options?: CallOptions): Promise<ForwardInfo> {
    return this.call('vm.forward', { ref, guestPort, ...(hostPort !== undefined ? { hostPort } : {}) }, options);
  }
  /** Stops serving a forwarded host port. */
  unforwardPort(ref: string, hostPort: number, options?: CallOptions): Promise<ForwardInfo> { return this.call('vm.unforward', { ref, hostPort }, options); }
  /** Images banger has. */
  listImages(): Promise<ImageInfo[]> { return this.call('image.list', {}); }
  /** Pulls an OCI image from its registry and registers it (once per reference, however many ask at once). */
  pullImage(params: ImagePullParams, options?: CallOptions): Promise<ImagePullResult> { return this.call('image.pull', params, options); }
  /** An image by name or by the reference it was pulled from, and the VMs made from it. */
  showImage(name: string, options?: CallOptions): Promise<ImageShowResult> { return this.call('image.show', { name }, options); }
  /** Deletes an image no VM is made from. */
  deleteImage(name: string, options?: CallOptions): Promise<{ name: string }> { return this.call('image.delete', { name }, options); }
  /** Writes a bundle (tar.zst) of a registered image or of a rootfs tar; returns what a catalog entry needs. */
  makeBundle(params: MakeBundleParams, options?: CallOptions): Promise<MakeBundleResult> { return this.call('image.makeBundle', params, options); }
  /** Registers an ext4 root file system as an image, with the kernel it boots. */
  registerImage(params: ImageRegisterParams, options?: CallOptions): Promise<ImageInfo> { return this.call('image.register', params, options); }
  /** A stopped VM's root file system, flattened, as a new image. */
  promoteImage(vm: string, name: string, options?: CallOptions): Promise<ImageInfo> { return this.call('image.promote', { vm, name }, options); }
  /** The cached OCI layer blobs and the images made from each. */
  listImageCache(options?: CallOptions): Promise<BlobCacheEntry[]> { return this.call('image.cache.list', {}, options); }
  /** Removes cached blobs no image was made from (every blob with `all`). */
  pruneImageCache(params: ImageCachePruneParams = {}, options?: CallOptions): Promise<ImageCachePruneResult> { return this.call('image.cache.prune', params, options); }
  /** Kernels banger has. */
  listKernels(): Promise<KernelInfo[]> { return this.call('kernel.list', {}); }
  /** The kernels the catalog offers, and which of them are here. */
  kernelCatalog(options?: CallOptions): Promise<KernelCatalogEntry[]> { return this.call('kernel.catalog', {}, options); }
  /** Downloads a kernel bundle the catalog names (again with `force`), verified, and registers it. */
  pullKernel(name: string, force = false, options?: CallOptions): Promise<KernelInfo> { return this.call('kernel.pull', { name, ...(force ? { force } : {}) }, options); }
  /** Registers the kernel in a directory (vmlinux or vmlinuz, and its modules) under `name`. */
  importKernel(name: string, from: string, options?: CallOptions): Promise<KernelInfo> { return this.call('kernel.import', { name, from }, options); }
  /** A kernel, and the images and VMs that use it. */
  showKernel(name: string, options?: CallOptions): Promise<KernelShowResult<KernelInfo>> { return this.call('kernel.show', { name }, options); }
  /** Removes a kernel no image names and no VM boots. */
  deleteKernel(name: string, options?: CallOptions): Promise<{ name: string }> { return this.call('kernel.delete', { name }, options); }
  /** The daemon's version. */
  version(): Promise<VersionInfo> { return this.call('daemon.version', {}); }
  /** Daemon, helper and VM counts. */
  status(): Promise<DaemonStatus> { return this.call('daemon.status', {}); }
  /** bangerd's half of banger doctor: what it runs and decided (see src/daemon/services/doctor-service.ts). */
  doctor(): Promise<DoctorCheck[]> { return this.call('daemon.doctor', {}); }
  /** Asks bangerd to exit; running VMs keep running. */
  async shutdown(): Promise<void> { await this.call('daemon.shutdown', {}); }

  close(): void {
    this.connection.close();
  }

  /** Drops the connection at once, without waiting for bangerd (a call still under way fails). */
  destroy(): void {
    this.connection.destroy();
  }
}

/** Connects to bangerd, starting it first if needed. */
export async function connect(options: ConnectOptions = {}): Promise<BangerClient> {
  const paths = resolvePaths();
  const socketPath = options.socketPath ?? paths.daemonSocket;
  const peer = { name: 'bangerd', unavailable: 'DAEMON_UNAVAILABLE', hint: `see why in ${path.join(paths.logDir, 'bangerd.log')}; the next banger command starts it again` } as const;
  try {
    return new BangerClient(await connectSocket(socketPath, { peer }));
  } catch (err) {
    if (options.autoStart === false) {
      throw new BangerError('DAEMON_UNAVAILABLE', `bangerd is not running (no answer on ${socketPath})`, { hint: 'start it: banger daemon start', cause: err });
    }
  }
  // Loaded only when nothing answers: starting the daemons reads config.toml, which a running daemon already did.
  const { ensureDaemons } = await import('./autostart.ts');
  const report = await ensureDaemons(paths);
  for (const name of report.started) options.onNotice?.(`started ${name}`);
  for (const warning of report.warnings) options.onNotice?.(warning);
  return new BangerClient(await connectSocket(socketPath, { peer }));
}
