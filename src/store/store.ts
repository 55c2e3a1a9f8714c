import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { ForwardInfo, ImageBoot, ImageInfo, ImageRunConfig, KernelFormat, KernelInfo, VmInfo, VmState, WorkspaceInfo } from '../protocol/methods.ts';
import { BangerError } from '../protocol/errors.ts';
import { isoNow, systemClock, type Clock } from '../system/clock.ts';
import { MIGRATIONS } from './migrations.ts';

interface VmRow {
  id: string; name: string; state: VmState; image: string; kernel: string; vcpus: number; memory_mib: number;
  disk_gib: number; ip: string; mac: string; tap: string; accel: string | null; pid: number | null; created_at: string;
  nat: number; workspace_source: string | null; workspace_dir: string | null; workspace_base: string | null; workspace_branch: string | null;
  agent_version: string | null;
}

interface ForwardRow { host_port: number; vm_id: string; guest_port: number; created_at: string }

interface ImageRow {
  name: string; path: string; size_bytes: number; source: string; created_at: string; boot: ImageBoot; has_sshd: number; ref: string | null;
  digest: string | null; run_config: string | null; layers: string; kernel_ref: string | null;
}
interface KernelRow { id: string; version: string; kernel_path: string; initrd_path: string; source: string; created_at: string; format: KernelFormat }

function imageFromRow(r: ImageRow): ImageInfo {
  return {
    name: r.name, path: r.path, sizeBytes: r.size_bytes, source: r.source, createdAt: r.created_at, boot: r.boot, hasSshd: r.has_sshd === 1,
    ref: r.ref, digest: r.digest, run: r.run_config === null ? null : (JSON.parse(r.run_config) as ImageRunConfig), layers: JSON.parse(r.layers) as string[],
    kernelRef: r.kernel_ref,
  };
}

function kernelFromRow(r: KernelRow): KernelInfo {
  return { id: r.id, version: r.version, kernelPath: r.kernel_path, initrdPath: r.initrd_path, source: r.source, createdAt: r.created_at, format: r.format };
}

function vmFromRow(r: VmRow): VmInfo {
  return {
    id: r.id, name: r.name, state: r.state, image: r.image, kernel: r.kernel, vcpus: r.vcpus, memoryMib: r.memory_mib,
    diskGib: r.disk_gib, ip: r.ip, mac: r.mac, tap: r.tap, accel: r.accel, pid: r.pid, createdAt: r.created_at,
    nat: r.nat === 1,
    workspace: r.workspace_source !== null && r.workspace_dir !== null && r.workspace_base !== null
      ? { source: r.workspace_source, dir: r.workspace_dir, baseCommit: r.workspace_base, branch: r.workspace_branch }
      : null,
    ...(r.agent_version !== null ? { agentVersion: r.agent_version } : {}),
  };
}

/** banger's state in SQLite. Pass ':memory:' in tests. */
/**
 * How this banger stands to the store at `file`, read without writing it (for an upgrade to check before it
 * swaps binaries): 0 current, 1 it will migrate it (or create it), 2 it cannot use it (a newer banger wrote it,
 * or it is not a banger store).
 */
export function checkMigrations(file: string): { status: 0 | 1 | 2; message: string } {
  if (!fs.existsSync(file)) return { status: 1, message: `no store at ${file} yet: it will be created at schema version ${MIGRATIONS.length}` };
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(file, { readOnly: true });
  } catch (err) {
    return { status: 2, message: `${file} cannot be opened as a store: ${(err as Error).message}` };
  }
  try {
    const current = (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (current === MIGRATIONS.length) return { status: 0, message: `the store is at schema version ${current}, this banger's` };
    if (current < MIGRATIONS.length) return { status: 1, message: `the store is at schema version ${current}; this banger will migrate it to ${MIGRATIONS.length}` };
    return { status: 2, message: `the store is at schema version ${current}, newer than this banger knows (${MIGRATIONS.length}): a newer banger wrote it` };
  } catch (err) {
    return { status: 2, message: `${file} is not a banger store: ${(err as Error).message}` };
  } finally {
    db.close();
  }
}

/**
 * The store's health for `banger doctor`, read without writing: how this banger stands to its schema
 * (checkMigrations) and SQLite's own integrity check ("ok", or the problems it lists; null when there is no store).
 */
export function checkStore(file: string): { migrations: { status: 0 | 1 | 2; message: string }; integrity: string | null } {
  const migrations = checkMigrations(file);
  if (!fs.existsSync(file)) return { migrations, integrity: null };
  try {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      const rows = db.prepare('PRAGMA integrity_check').all() as Array<{ integrity_check: string }>;
      return { migrations, integrity: rows.map((r) => r.integrity_check).join('; ') };
    } finally {
      db.close();
    }
  } catch (err) {
    return { migrations, integrity: (err as Error).message };
  }
}

export class Store {
  readonly db: DatabaseSync;
  private readonly clock: Clock;

  constructor(file: string, clock: Clock = systemClock) {
    this.clock = clock;
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new DatabaseSync(file);
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;');
    this.migrate();
  }

  /** Applies the migrations this database has not seen yet, each in its own transaction. */
  private migrate(): void {
    const current = (this.db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
    if (current > MIGRATIONS.length) {
      this.db.close();
      throw new BangerError('STORE_TOO_NEW', `the database has schema version ${current}, newer than this banger knows (${MIGRATIONS.length}): a newer banger wrote it`, {
        hint: 'upgrade banger to the version that wrote it, or point BANGER_HOME at another directory to keep this one\'s state apart',
      });
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.exec('BEGIN');
      try {
        this.db.exec(MIGRATIONS[v]!);
        this.db.exec(`PRAGMA user_version = ${v + 1}`);
        this.db.exec('COMMIT');
      } catch (err) {
        this.db.exec('ROLLBACK');
        throw err;
      }
    }
  }

  schemaVersion(): number {
    return (this.db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
  }

  close(): void {
    this.db.close();
  }

  /** A new VM; `unfinished` until its create calls finishCreate (a daemon killed before that leaves it so). */
  insertVm(vm: VmInfo, options: { unfinished?: boolean } = {}): void {
    this.db.prepare(
      `INSERT INTO vms (id, name, state, image, kernel, vcpus, memory_mib, disk_gib, ip, mac, tap, accel, pid, created_at, updated_at, nat, unfinished)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(vm.id, vm.name, vm.state, vm.image, vm.kernel, vm.vcpus, vm.memoryMib, vm.diskGib, vm.ip, vm.mac, vm.tap, vm.accel, vm.pid, vm.createdAt, vm.createdAt, vm.nat ? 1 : 0, options.unfinished ? 1 : 0);
    if (vm.workspace) this.setWorkspace(vm.id, vm.workspace);
  }

  /** The VM's create has finished (it is whole, or kept on purpose): no longer something to undo at start. */
  finishCreate(id: string): void {
    this.db.prepare('UPDATE vms SET unfinished = 0 WHERE id = ?').run(id);
  }

  /** VMs whose create never finished: left by a daemon that was killed during it. */
  unfinishedVms(): VmInfo[] {
    return (this.db.prepare('SELECT * FROM vms WHERE unfinished = 1 ORDER BY created_at').all() as unknown as VmRow[]).map(vmFromRow);
  }

  /** Records the workspace shipped into a VM (replacing any earlier one), or forgets it (null). */
  setWorkspace(id: string, workspace: WorkspaceInfo | null): void {
    this.db.prepare('UPDATE vms SET workspace_source = ?, workspace_dir = ?, workspace_base = ?, workspace_branch = ?, updated_at = ? WHERE id = ?').run(
      workspace?.source ?? null, workspace?.dir ?? null, workspace?.baseCommit ?? null, workspace?.branch ?? null, isoNow(this.clock), id,
    );
  }

  updateVm(id: string, fields: { state?: VmState; pid?: number | null; accel?: string | null; nat?: boolean; vcpus?: number; memoryMib?: number; diskGib?: number }): void {
    const current = this.getVm(id);
    if (!current) return;
    this.db.prepare('UPDATE vms SET state = ?, pid = ?, accel = ?, nat = ?, vcpus = ?, memory_mib = ?, disk_gib = ?, updated_at = ? WHERE id = ?').run(
      fields.state ?? current.state,
      fields.pid === undefined ? current.pid : fields.pid,
      fields.accel === undefined ? current.accel : fields.accel,
      (fields.nat ?? current.nat) ? 1 : 0,
      fields.vcpus ?? current.vcpus,
      fields.memoryMib ?? current.memoryMib,
      fields.diskGib ?? current.diskGib,
      isoNow(this.clock),
      id,
    );
  }

  /** The agent version a VM's guest said hello with (null: none has yet). */
  setAgentVersion(id: string, version: string | null): void {
    this.db.prepare('UPDATE vms SET agent_version = ? WHERE id = ?').run(version, id);
  }

  /** Records a forward; false when the host port is already forwarded (to any VM). */
  insertForward(forward: ForwardInfo): boolean {
    const result = this.db.prepare('INSERT INTO forwards (host_port, vm_id, guest_port, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(host_port) DO NOTHING')
      .run(forward.hostPort, forward.vmId, forward.guestPort, forward.createdAt);
    return Number(result.changes) === 1;
  }

  deleteForward(hostPort: number): void {
    this.db.prepare('DELETE FROM forwards WHERE host_port = ?').run(hostPort);
  }

  /** Every forward, or one VM's. */
  listForwards(vmId?: string): ForwardInfo[] {
    const rows = (vmId === undefined
      ? this.db.prepare('SELECT * FROM forwards ORDER BY host_port').all()
      : this.db.prepare('SELECT * FROM forwards WHERE vm_id = ? ORDER BY host_port').all(vmId)) as unknown as ForwardRow[];
    return rows.map((r) => ({ hostPort: r.host_port, vmId: r.vm_id, guestPort: r.guest_port, createdAt: r.created_at }));
  }

  deleteVm(id: string): void {
    this.db.prepare('DELETE FROM vms WHERE id = ?').run(id);
  }

  getVm(id: string): VmInfo | null {
    const row = this.db.prepare('SELECT * FROM vms WHERE id = ?').get(id) as VmRow | undefined;
    return row ? vmFromRow(row) : null;
  }

  listVms(): VmInfo[] {
    return (this.db.prepare('SELECT * FROM vms ORDER BY created_at, name').all() as unknown as VmRow[]).map(vmFromRow);
  }

  /** Exact name, exact id, or a unique id prefix. Returns all matches so the caller can report ambiguity. */
  findVms(ref: string): VmInfo[] {
    const exact = this.db.prepare('SELECT * FROM vms WHERE name = ? OR id = ?').all(ref, ref) as unknown as VmRow[];
    if (exact.length > 0) return exact.map(vmFromRow);
    const escaped = ref.replace(/[\\%_]/g, (c) => `\\${c}`);
    return (this.db.prepare("SELECT * FROM vms WHERE id LIKE ? ESCAPE '\\'").all(`${escaped}%`) as unknown as VmRow[]).map(vmFromRow);
  }

  usedIps(): Set<string> {
    return new Set((this.db.prepare('SELECT ip FROM vms').all() as Array<{ ip: string }>).map((r) => r.ip));
  }

  upsertImage(image: ImageInfo): void {
    this.db.prepare(
      `INSERT INTO images (name, path, size_bytes, source, created_at, boot, has_sshd, ref, digest, run_config, layers, kernel_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(name) DO UPDATE SET path = excluded.path, size_bytes = excluded.size_bytes, source = excluded.source, created_at = excluded.created_at,
         boot = excluded.boot, has_sshd = excluded.has_sshd, ref = excluded.ref, digest = excluded.digest, run_config = excluded.run_config, layers = excluded.layers,
         kernel_ref = excluded.kernel_ref`,
    ).run(
      image.name, image.path, image.sizeBytes, image.source, image.createdAt, image.boot, image.hasSshd ? 1 : 0, image.ref, image.digest,
      image.run === null ? null : JSON.stringify(image.run), JSON.stringify(image.layers), image.kernelRef,
    );
  }

  getImage(name: string): ImageInfo | null {
    const r = this.db.prepare('SELECT * FROM images WHERE name = ?').get(name) as ImageRow | undefined;
    return r ? imageFromRow(r) : null;
  }

  deleteImage(name: string): void {
    this.db.prepare('DELETE FROM images WHERE name = ?').run(name);
  }

  listImages(): ImageInfo[] {
    return (this.db.prepare('SELECT * FROM images ORDER BY name').all() as unknown as ImageRow[]).map(imageFromRow);
  }

  upsertKernel(k: KernelInfo): void {
    this.db.prepare(
      `INSERT INTO kernels (id, version, kernel_path, initrd_path, source, created_at, format) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET version = excluded.version, kernel_path = excluded.kernel_path,
         initrd_path = excluded.initrd_path, source = excluded.source, created_at = excluded.created_at, format = excluded.format`,
    ).run(k.id, k.version, k.kernelPath, k.initrdPath, k.source, k.createdAt, k.format);
  }

  getKernel(id: string): KernelInfo | null {
    const r = this.db.prepare('SELECT * FROM kernels WHERE id = ?').get(id) as KernelRow | undefined;
    return r ? kernelFromRow(r) : null;
  }

  deleteKernel(id: string): void {
    this.db.prepare('DELETE FROM kernels WHERE id = ?').run(id);
  }

  listKernels(): KernelInfo[] {
    return (this.db.prepare('SELECT * FROM kernels ORDER BY id').all() as unknown as KernelRow[]).map(kernelFromRow);
  }
}
