// The typed surface of bangerd-root. bangerd only ever reaches root through these calls.
import type { z } from 'zod';
import type { ProgressEvent } from './jsonrpc.ts';
import type { ImageBoot } from './image-types.ts';
import type {
  bridgeParamsSchema, buildImageParamsSchema, importLayersParamsSchema, deleteTapParamsSchema, launchFirecrackerParamsSchema, launchQemuParamsSchema, natListParamsSchema, natParamsSchema, qemuDiskSchema, qemuLaunchSpecSchema,
  resolvedRouteParamsSchema, resolvedUnrouteParamsSchema, tapParamsSchema,
} from './helper-schemas.ts';

/** The bridge, subnet and namespace a bangerd-root was started for. */
export interface HelperNetwork { bridge: string; subnet: string; netns: string | null }
export interface HelperPong { pid: number; version: string; network: HelperNetwork }
// Request types come from the schemas bangerd-root parses them with (helper-schemas.ts), so the two cannot drift.
export type BridgeParams = z.infer<typeof bridgeParamsSchema>;
export type TapParams = z.infer<typeof tapParamsSchema>;
export type DeleteTapParams = z.infer<typeof deleteTapParamsSchema>;
export type LaunchQemuParams = z.infer<typeof launchQemuParamsSchema>;
export type LaunchFirecrackerParams = z.infer<typeof launchFirecrackerParamsSchema>;
export type BuildImageParams = z.infer<typeof buildImageParamsSchema>;
export type ImportLayersParams = z.infer<typeof importLayersParamsSchema>;
export interface ImportLayersResult {
  sizeBytes: number;
  boot: ImageBoot;
  hasSshd: boolean;
  /** What the image config's User means in the image's own /etc/passwd and /etc/group. */
  uid: number;
  gid: number;
  /** Device nodes and FIFOs, which are not created (a VM's /dev is devtmpfs). */
  skipped: string[];
  /** Paths whose extended attributes could not be set. */
  droppedXattrs: string[];
}
export type NatParams = z.infer<typeof natParamsSchema>;
export type NatListParams = z.infer<typeof natListParamsSchema>;
export type ResolvedRouteParams = z.infer<typeof resolvedRouteParamsSchema>;
export type ResolvedUnrouteParams = z.infer<typeof resolvedUnrouteParamsSchema>;
export interface OpOptions { signal?: AbortSignal; progress?: (e: ProgressEvent) => void }

export interface PrivilegedOps {
  ping(): Promise<HelperPong>;
  ensureBridge(params: BridgeParams): Promise<void>;
  createTap(params: TapParams): Promise<void>;
  deleteTap(params: DeleteTapParams): Promise<void>;
  /** Lets the guest at `ip` reach beyond the host (forwarding and masquerading); idempotent. */
  natEnable(params: NatParams): Promise<void>;
  /** Takes that away again; disabling a guest without NAT succeeds. */
  natDisable(params: NatParams): Promise<void>;
  /** The guest addresses that have NAT now. */
  natList(params: NatListParams): Promise<{ ips: string[] }>;
  launchQemu(params: LaunchQemuParams, options?: OpOptions): Promise<{ pid: number }>;
  /**
   * Starts Firecracker for a VM, under the jailer (chroot with the VM's files linked in, the owner's ids, cgroup
   * limits for its size, the helper's namespace, its own pid namespace) or, with `jailer` null, as the owner.
   * Resolves with the pid of the Firecracker process once its API socket is there.
   */
  launchFirecracker(params: LaunchFirecrackerParams, options?: OpOptions): Promise<{ pid: number }>;
  buildImage(params: BuildImageParams, options?: OpOptions): Promise<{ sizeBytes: number }>;
  /**
   * Applies cached layer blobs (each hashed again as it is read) into a private tree as root, so owners and
   * setuid bits are kept, and hands the owner the ext4 image at `output` (in banger's cache directory).
   */
  importLayers(params: ImportLayersParams, options?: OpOptions): Promise<ImportLayersResult>;
  /**
   * Has systemd-resolved send the host's queries for .vm to 127.0.0.1:port (bangerd's DNS server), through the
   * bridge's per-link settings. MISSING_TOOL (with the manual recipe) where the host has no resolvectl.
   */
  resolvedRoute(params: ResolvedRouteParams): Promise<void>;
  /** Takes that away again (`resolvectl revert`); succeeds when there is nothing to take away. */
  resolvedUnroute(params: ResolvedUnrouteParams): Promise<void>;
}

export const HELPER_METHODS = ['helper.ping', 'net.ensureBridge', 'net.createTap', 'net.deleteTap', 'net.natEnable', 'net.natDisable', 'net.natList', 'vmm.launchQemu', 'vmm.launchFirecracker', 'image.build', 'image.importLayers', 'net.resolvedRoute', 'net.resolvedUnroute',
  'helper.shutdown'] as const;

/** What bangerd-root turns into QEMU's command line (system/qemu-argv.ts), after checking every field. */
export type QemuDisk = z.infer<typeof qemuDiskSchema>;
export type QemuLaunchSpec = z.infer<typeof qemuLaunchSpecSchema>;
