// The typed surface of bangerd-root. bangerd only ever reaches root through these calls.
import type { ProgressEvent } from './jsonrpc.ts';

/** The bridge, subnet and namespace a bangerd-root was started for. */
export interface HelperNetwork { bridge: string; subnet: string; netns: string | null }
export interface HelperPong { pid: number; version: string; network: HelperNetwork }
export interface BridgeParams { bridge: string; gatewayCidr: string; netns: string | null }
export interface TapParams { tap: string; bridge: string; netns: string | null }
export interface DeleteTapParams { tap: string; netns: string | null }
export interface LaunchQemuParams { qemu: string; spec: QemuLaunchSpec; netns: string | null }
export interface BuildImageParams { name: string; mirror: string; output: string }
export interface OpOptions { signal?: AbortSignal; progress?: (e: ProgressEvent) => void }

export interface PrivilegedOps {
  ping(): Promise<HelperPong>;
  ensureBridge(params: BridgeParams): Promise<void>;
  createTap(params: TapParams): Promise<void>;
  deleteTap(params: DeleteTapParams): Promise<void>;
  launchQemu(params: LaunchQemuParams, options?: OpOptions): Promise<{ pid: number }>;
  buildImage(params: BuildImageParams, options?: OpOptions): Promise<{ sizeBytes: number }>;
}

export const HELPER_METHODS = ['helper.ping', 'net.ensureBridge', 'net.createTap', 'net.deleteTap', 'vmm.launchQemu', 'image.build', 'helper.shutdown'] as const;

/** What bangerd-root turns into QEMU's command line (system/qemu-argv.ts), after checking every field. */
export interface QemuDisk {
  id: string;
  path: string;
  format: 'raw' | 'qcow2';
}

export interface QemuLaunchSpec {
  vmId: string;
  accel: 'kvm' | 'tcg';
  vcpus: number;
  memoryMib: number;
  kernelPath: string;
  initrdPath: string;
  cmdline: string;
  disks: QemuDisk[];
  net: { tap: string; mac: string } | null;
  qmpSocket: string;
  serialLog: string;
  pidFile: string;
}
