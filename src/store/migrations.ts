// Forward-only: append new entries, never edit or reorder applied ones. PRAGMA user_version holds the count applied.
export const MIGRATIONS: readonly string[] = [
  // 1: VMs, images, kernels.
  `CREATE TABLE vms (
     id TEXT PRIMARY KEY,
     name TEXT NOT NULL UNIQUE,
     state TEXT NOT NULL CHECK (state IN ('created', 'running', 'stopped')),
     image TEXT NOT NULL,
     kernel TEXT NOT NULL,
     vcpus INTEGER NOT NULL,
     memory_mib INTEGER NOT NULL,
     disk_gib INTEGER NOT NULL,
     ip TEXT NOT NULL UNIQUE,
     mac TEXT NOT NULL,
     tap TEXT NOT NULL UNIQUE,
     accel TEXT,
     pid INTEGER,
     created_at TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );
   CREATE TABLE images (
     name TEXT PRIMARY KEY,
     path TEXT NOT NULL,
     size_bytes INTEGER NOT NULL,
     source TEXT NOT NULL,
     created_at TEXT NOT NULL
   );
   CREATE TABLE kernels (
     id TEXT PRIMARY KEY,
     version TEXT NOT NULL,
     kernel_path TEXT NOT NULL,
     initrd_path TEXT NOT NULL,
     source TEXT NOT NULL,
     created_at TEXT NOT NULL
   );`,
  // 2: outbound NAT kept across restarts; the workspace a VM was given (host checkout, guest directory, base commit).
  `ALTER TABLE vms ADD COLUMN nat INTEGER NOT NULL DEFAULT 0;
   ALTER TABLE vms ADD COLUMN workspace_source TEXT;
   ALTER TABLE vms ADD COLUMN workspace_dir TEXT;
   ALTER TABLE vms ADD COLUMN workspace_base TEXT;
   ALTER TABLE vms ADD COLUMN workspace_branch TEXT;`,
  // 3: the guest agent version each VM last said hello with; host ports forwarded to guest ports while it runs.
  `ALTER TABLE vms ADD COLUMN agent_version TEXT;
   CREATE TABLE forwards (
     host_port INTEGER PRIMARY KEY CHECK (host_port BETWEEN 1 AND 65535),
     vm_id TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
     guest_port INTEGER NOT NULL CHECK (guest_port BETWEEN 1 AND 65535),
     created_at TEXT NOT NULL
   );
   CREATE INDEX forwards_vm ON forwards (vm_id);`,
  // 4: how an image boots and runs commands, where it came from (OCI pulls, bundles), the kernel it names; whether
  // a kernel is an ELF vmlinux or a bzImage (Firecracker boots only the former).
  `ALTER TABLE images ADD COLUMN boot TEXT NOT NULL DEFAULT 'systemd' CHECK (boot IN ('systemd', 'agent'));
   ALTER TABLE images ADD COLUMN has_sshd INTEGER NOT NULL DEFAULT 1;
   ALTER TABLE images ADD COLUMN ref TEXT;
   ALTER TABLE images ADD COLUMN digest TEXT;
   ALTER TABLE images ADD COLUMN run_config TEXT;
   ALTER TABLE images ADD COLUMN layers TEXT NOT NULL DEFAULT '[]';
   ALTER TABLE images ADD COLUMN kernel_ref TEXT;
   ALTER TABLE kernels ADD COLUMN format TEXT NOT NULL DEFAULT 'bzimage' CHECK (format IN ('elf', 'bzimage'));`,
  // 5: a VM whose create has not finished: one a daemon killed mid-create left behind, which the next removes.
  `ALTER TABLE vms ADD COLUMN unfinished INTEGER NOT NULL DEFAULT 0;`,
];
