// The shape of every bangerd-root request, written once: bangerd-root parses each request's params with these
// before it does any work, and privileged-ops.ts takes its types from them. They check shape only (types,
// required fields, no unknown fields); what a value may be (patterns, paths inside banger's directories, the
// helper's own bridge and namespace) is bangerd-root's to check, against the host it runs on.
import { z } from 'zod';

/** No params: `{}`. */
export const emptyParamsSchema = z.strictObject({});

export const bridgeParamsSchema = z.strictObject({
  bridge: z.string(),
  gatewayCidr: z.string(),
  netns: z.string().nullable(),
});

export const tapParamsSchema = z.strictObject({
  tap: z.string(),
  bridge: z.string(),
  netns: z.string().nullable(),
});

export const deleteTapParamsSchema = z.strictObject({
  tap: z.string(),
  netns: z.string().nullable(),
});

/** One guest's outbound NAT: its address on the helper's bridge. */
export const natParamsSchema = z.strictObject({
  ip: z.string(),
  bridge: z.string(),
  netns: z.string().nullable(),
});

export const natListParamsSchema = z.strictObject({
  bridge: z.string(),
  netns: z.string().nullable(),
});

export const qemuDiskSchema = z.strictObject({
  id: z.string(),
  path: z.string(),
  format: z.enum(['raw', 'qcow2']),
});

export const qemuLaunchSpecSchema = z.strictObject({
  vmId: z.string(),
  accel: z.enum(['kvm', 'tcg']),
  vcpus: z.number(),
  memoryMib: z.number(),
  kernelPath: z.string(),
  initrdPath: z.string(),
  cmdline: z.string(),
  disks: z.array(qemuDiskSchema),
  net: z.strictObject({ tap: z.string(), mac: z.string() }).nullable(),
  qmpSocket: z.string(),
  agentSocket: z.string(),
  serialLog: z.string(),
  pidFile: z.string(),
});

export const launchQemuParamsSchema = z.strictObject({
  qemu: z.string(),
  spec: qemuLaunchSpecSchema,
  netns: z.string().nullable(),
});

export const buildImageParamsSchema = z.strictObject({
  name: z.string(),
  mirror: z.string(),
  output: z.string(),
});

/**
 * Layers from bangerd's blob cache (OCI layers in order, or one rootfs tar) made into a root filesystem image:
 * `user` is the image config's User, `devices` what device nodes in the archives mean.
 */
export const importLayersParamsSchema = z.strictObject({
  layers: z.array(z.strictObject({ path: z.string(), digest: z.string(), diffId: z.string().nullable(), mediaType: z.string() })),
  output: z.string(),
  minSizeBytes: z.number(),
  user: z.string().nullable(),
  devices: z.enum(['skip-under-dev', 'refuse']),
});

/** Route queries for .vm to bangerd's DNS server on 127.0.0.1:port, through systemd-resolved on the bridge. */
export const resolvedRouteParamsSchema = z.strictObject({
  bridge: z.string(),
  port: z.number(),
});

export const resolvedUnrouteParamsSchema = z.strictObject({
  bridge: z.string(),
});

/** A block device for Firecracker: its API id, the file, and whether the guest may write it. */
export const firecrackerDriveSchema = z.strictObject({
  id: z.string(),
  path: z.string(),
  readOnly: z.boolean(),
});

/**
 * What bangerd-root needs to start one Firecracker: the files it links into the jail (or hands over as they are
 * without the jailer) and the VM's size, for the jail's cgroup limits. The VM itself is configured afterwards
 * through Firecracker's API socket, by bangerd.
 */
export const firecrackerLaunchSpecSchema = z.strictObject({
  vmId: z.string(),
  vcpus: z.number(),
  memoryMib: z.number(),
  kernelPath: z.string(),
  initrdPath: z.string(),
  drives: z.array(firecrackerDriveSchema),
  serialLog: z.string(),
  /**
   * The tap bangerd then gives the VM through the API (null: none). Firecracker runs as the owner without
   * capabilities, so the kernel lets it open only the owner's taps; bangerd-root checks at launch that this one
   * is such a tap, on its bridge, as vmm.launchQemu does.
   */
  tap: z.string().nullable(),
  /** A snapshot to start from (its state and memory files), linked in beside the drives; null for a boot. */
  snapshot: z.strictObject({ statePath: z.string(), memPath: z.string() }).nullable(),
});

export const launchFirecrackerParamsSchema = z.strictObject({
  firecracker: z.string(),
  /** The jailer binary; null runs Firecracker without it (development hosts). */
  jailer: z.string().nullable(),
  spec: firecrackerLaunchSpecSchema,
  netns: z.string().nullable(),
});
