// Every request banger sends Firecracker, built from its API description (src/firecracker/swagger/firecracker.yaml
// of Firecracker v1.16.1; the body types below are its `definitions`, with only the fields banger sets). Optional
// fields are left out, never sent as null; resource ids are letters, digits and underscores, and a path's id is
// the body's. test/unit/firecracker-driver.test.ts checks what the driver sends against that file itself.

/** definitions/Logger */
export interface Logger { log_path?: string; level?: 'Error' | 'Warning' | 'Info' | 'Debug' | 'Trace' | 'Off'; show_level?: boolean; show_log_origin?: boolean }
/** definitions/Metrics */
export interface Metrics { metrics_path: string }
/** definitions/SerialDevice */
export interface SerialDevice { serial_out_path?: string }
/** definitions/MachineConfiguration */
export interface MachineConfiguration { vcpu_count: number; mem_size_mib: number; smt?: boolean; track_dirty_pages?: boolean }
/** definitions/BootSource */
export interface BootSource { kernel_image_path: string; initrd_path?: string; boot_args?: string }
/** definitions/Drive (virtio-block) */
export interface Drive { drive_id: string; is_root_device: boolean; is_read_only?: boolean; path_on_host?: string; cache_type?: 'Unsafe' | 'Writeback' }
/** definitions/NetworkInterface */
export interface NetworkInterface { iface_id: string; host_dev_name: string; guest_mac?: string }
/** definitions/Vsock */
export interface Vsock { guest_cid: number; uds_path: string }
/** definitions/InstanceActionInfo */
export interface InstanceActionInfo { action_type: 'FlushMetrics' | 'InstanceStart' | 'SendCtrlAltDel' }
/** definitions/Vm */
export interface Vm { state: 'Paused' | 'Resumed' }
/** definitions/SnapshotCreateParams */
export interface SnapshotCreateParams { snapshot_path: string; mem_file_path: string; snapshot_type?: 'Full' | 'Diff' }
/** definitions/MemoryBackend */
export interface MemoryBackend { backend_type: 'File' | 'Uffd'; backend_path: string }
/** definitions/NetworkOverride */
export interface NetworkOverride { iface_id: string; host_dev_name: string }
/** definitions/SnapshotLoadParams (mem_backend, not the deprecated mem_file_path) */
export interface SnapshotLoadParams { snapshot_path: string; mem_backend: MemoryBackend; resume_vm?: boolean; track_dirty_pages?: boolean; network_overrides?: NetworkOverride[] }

export interface FirecrackerRequest {
  method: 'GET' | 'PUT' | 'PATCH';
  path: string;
  body?: unknown;
}

/** Firecracker's rule for resource ids in paths and bodies (parsed_request.rs checked_id). */
const RESOURCE_ID = /^[A-Za-z0-9_]+$/;

function resourceId(id: string): string {
  if (!RESOURCE_ID.test(id)) throw new Error(`Firecracker resource id ${JSON.stringify(id)} must be letters, digits and underscores`);
  return id;
}

/** Drops keys whose value is undefined, so an optional field left unset is absent from the JSON. */
function present<T extends object>(body: T): T {
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)) as T;
}

export const requests = {
  logger: (body: Logger): FirecrackerRequest => ({ method: 'PUT', path: '/logger', body: present(body) }),
  metrics: (body: Metrics): FirecrackerRequest => ({ method: 'PUT', path: '/metrics', body }),
  serial: (body: SerialDevice): FirecrackerRequest => ({ method: 'PUT', path: '/serial', body: present(body) }),
  machineConfig: (body: MachineConfiguration): FirecrackerRequest => ({ method: 'PUT', path: '/machine-config', body: present(body) }),
  bootSource: (body: BootSource): FirecrackerRequest => ({ method: 'PUT', path: '/boot-source', body: present(body) }),
  drive: (body: Drive): FirecrackerRequest => ({ method: 'PUT', path: `/drives/${resourceId(body.drive_id)}`, body: present(body) }),
  networkInterface: (body: NetworkInterface): FirecrackerRequest => ({ method: 'PUT', path: `/network-interfaces/${resourceId(body.iface_id)}`, body: present(body) }),
  vsock: (body: Vsock): FirecrackerRequest => ({ method: 'PUT', path: '/vsock', body }),
  action: (body: InstanceActionInfo): FirecrackerRequest => ({ method: 'PUT', path: '/actions', body }),
  vmState: (body: Vm): FirecrackerRequest => ({ method: 'PATCH', path: '/vm', body }),
  snapshotCreate: (body: SnapshotCreateParams): FirecrackerRequest => ({ method: 'PUT', path: '/snapshot/create', body: present(body) }),
  snapshotLoad: (body: SnapshotLoadParams): FirecrackerRequest => ({ method: 'PUT', path: '/snapshot/load', body: present(body) }),
  describeInstance: (): FirecrackerRequest => ({ method: 'GET', path: '/' }),
  version: (): FirecrackerRequest => ({ method: 'GET', path: '/version' }),
};
