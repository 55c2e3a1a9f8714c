import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, beforeEach, afterEach, describe, it } from 'node:test';
import type { ImageInfo, KernelInfo, VmInfo } from '../../src/protocol/methods.ts';
import { MIGRATIONS } from '../../src/store/migrations.ts';
import { Store } from '../../src/store/store.ts';
import { fails } from '../fakes/expect-error.ts';

function vm(overrides: Partial<VmInfo> = {}): VmInfo {
  return {
    id: 'aaaaaaaaaaaa', name: 'one', state: 'created', image: 'debian-bookworm', kernel: 'host-6.1', vcpus: 2, memoryMib: 1024,
    diskGib: 8, ip: '172.30.0.2', mac: '52:54:00:aa:aa:aa', tap: 'bgtaaaaaaaaaaaa', accel: null, pid: null,
    createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null, ...overrides,
  };
}

describe('Store migrations', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-store-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('brings a new database to the latest schema', () => {
    const store = new Store(':memory:');
    try {
      assert.equal(store.schemaVersion(), MIGRATIONS.length);
      const tables = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
      assert.deepEqual(tables, ['forwards', 'images', 'kernels', 'vms']);
    } finally {
      store.close();
    }
  });

  it('is idempotent on reopen and keeps the data (file, creating its directory)', () => {
    const file = path.join(dir, 'nested', 'banger.db');
    const first = new Store(file);
    first.insertVm(vm());
    first.close();
    const second = new Store(file);
    try {
      assert.equal(second.schemaVersion(), MIGRATIONS.length);
      assert.deepEqual(second.listVms(), [vm()]);
    } finally {
      second.close();
    }
  });

  it('refuses a database from a newer banger', () => {
    const file = path.join(dir, 'newer.db');
    const db = new DatabaseSync(file);
    db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    assert.throws(() => new Store(file), fails('STORE_TOO_NEW', /newer than this banger/, { hint: true }));
  });
});

describe('Store VMs', () => {
  let store: Store;
  beforeEach(() => {
    store = new Store(':memory:');
  });
  afterEach(() => {
    store.close();
  });

  it('inserts and reads back a VM exactly', () => {
    store.insertVm(vm({ accel: 'tcg', pid: 77, state: 'running' }));
    assert.deepEqual(store.getVm('aaaaaaaaaaaa'), vm({ accel: 'tcg', pid: 77, state: 'running' }));
    assert.equal(store.getVm('nope'), null);
  });

  it('updates only the fields given, and can clear pid and accel', () => {
    store.insertVm(vm());
    store.updateVm('aaaaaaaaaaaa', { state: 'running', pid: 123, accel: 'kvm' });
    assert.deepEqual(store.getVm('aaaaaaaaaaaa'), vm({ state: 'running', pid: 123, accel: 'kvm' }));
    store.updateVm('aaaaaaaaaaaa', { state: 'stopped' });
    assert.deepEqual(store.getVm('aaaaaaaaaaaa'), vm({ state: 'stopped', pid: 123, accel: 'kvm' }));
    store.updateVm('aaaaaaaaaaaa', { pid: null, accel: null });
    assert.deepEqual(store.getVm('aaaaaaaaaaaa'), vm({ state: 'stopped' }));
  });

  it('updating or deleting a missing VM does nothing', () => {
    store.insertVm(vm());
    store.updateVm('missing', { state: 'running' });
    store.deleteVm('missing');
    assert.deepEqual(store.listVms(), [vm()]);
  });

  it('keeps the agent version a VM said hello with, absent until then', () => {
    store.insertVm(vm());
    assert.equal(store.getVm('aaaaaaaaaaaa')!.agentVersion, undefined);
    store.setAgentVersion('aaaaaaaaaaaa', '0.1.0');
    assert.equal(store.getVm('aaaaaaaaaaaa')!.agentVersion, '0.1.0');
  });

  it('keeps one forward per host port, lists them per VM, and drops them with their VM', () => {
    store.insertVm(vm());
    store.insertVm(vm({ id: 'bbbbbbbbbbbb', name: 'two', ip: '172.30.0.3', tap: 'bgtbbbbbbbbbbbb' }));
    const at = '2025-01-01T00:00:00.000Z';
    assert.equal(store.insertForward({ hostPort: 8080, vmId: 'aaaaaaaaaaaa', guestPort: 80, createdAt: at }), true);
    assert.equal(store.insertForward({ hostPort: 8080, vmId: 'bbbbbbbbbbbb', guestPort: 81, createdAt: at }), false);
    assert.equal(store.insertForward({ hostPort: 9090, vmId: 'bbbbbbbbbbbb', guestPort: 90, createdAt: at }), true);
    assert.deepEqual(store.listForwards('aaaaaaaaaaaa'), [{ hostPort: 8080, vmId: 'aaaaaaaaaaaa', guestPort: 80, createdAt: at }]);
    assert.deepEqual(store.listForwards().map((f) => f.hostPort), [8080, 9090]);
    store.deleteVm('aaaaaaaaaaaa');
    assert.deepEqual(store.listForwards().map((f) => f.hostPort), [9090]);
    store.deleteForward(9090);
    assert.deepEqual(store.listForwards(), []);
  });

  it('deletes a VM and frees its address', () => {
    store.insertVm(vm());
    store.insertVm(vm({ id: 'bbbbbbbbbbbb', name: 'two', ip: '172.30.0.3', tap: 'bgtbbbbbbbbbbbb' }));
    assert.deepEqual(store.usedIps(), new Set(['172.30.0.2', '172.30.0.3']));
    store.deleteVm('aaaaaaaaaaaa');
    assert.deepEqual(store.listVms().map((v) => v.name), ['two']);
    assert.deepEqual(store.usedIps(), new Set(['172.30.0.3']));
  });

  it('rejects a duplicate name, address or tap', () => {
    store.insertVm(vm());
    assert.throws(() => store.insertVm(vm({ id: 'bbbbbbbbbbbb', ip: '172.30.0.3', tap: 'bgtbbbbbbbbbbbb' })), /UNIQUE constraint failed: vms\.name/);
    assert.throws(() => store.insertVm(vm({ id: 'bbbbbbbbbbbb', name: 'two', tap: 'bgtbbbbbbbbbbbb' })), /UNIQUE constraint failed: vms\.ip/);
    assert.throws(() => store.insertVm(vm({ id: 'bbbbbbbbbbbb', name: 'two', ip: '172.30.0.3' })), /UNIQUE constraint failed: vms\.tap/);
    assert.equal(store.listVms().length, 1);
  });

  it('rejects a state outside the state machine', () => {
    assert.throws(() => store.insertVm(vm({ state: 'paused' as VmInfo['state'] })), /CHECK constraint failed/);
  });

  it('lists VMs by creation time, then name', () => {
    store.insertVm(vm({ id: 'c1', name: 'zeta', ip: '10.0.0.3', tap: 't3', createdAt: '2025-01-02T00:00:00.000Z' }));
    store.insertVm(vm({ id: 'c2', name: 'beta', ip: '10.0.0.4', tap: 't4', createdAt: '2025-01-01T00:00:00.000Z' }));
    store.insertVm(vm({ id: 'c3', name: 'alpha', ip: '10.0.0.5', tap: 't5', createdAt: '2025-01-01T00:00:00.000Z' }));
    assert.deepEqual(store.listVms().map((v) => v.name), ['alpha', 'beta', 'zeta']);
  });

  describe('findVms', () => {
    beforeEach(() => {
      store.insertVm(vm({ id: 'abc123000000', name: 'web', ip: '10.0.0.2', tap: 'tap1' }));
      store.insertVm(vm({ id: 'abc456000000', name: 'db', ip: '10.0.0.3', tap: 'tap2' }));
      store.insertVm(vm({ id: 'def789000000', name: 'abc123', ip: '10.0.0.4', tap: 'tap3' }));
      store.insertVm(vm({ id: 'x_y%z0000000', name: 'odd', ip: '10.0.0.5', tap: 'tap4' }));
    });
    const names = (ref: string): string[] => store.findVms(ref).map((v) => v.name).sort();

    it('finds by exact name', () => {
      assert.deepEqual(names('web'), ['web']);
    });
    it('finds by exact id', () => {
      assert.deepEqual(names('def789000000'), ['abc123']);
    });
    it('prefers an exact name over an id prefix it also matches', () => {
      assert.deepEqual(names('abc123'), ['abc123']);
    });
    it('finds by unique id prefix', () => {
      assert.deepEqual(names('abc4'), ['db']);
      assert.deepEqual(names('def'), ['abc123']);
    });
    it('returns every VM an ambiguous prefix matches', () => {
      assert.deepEqual(names('abc'), ['db', 'web']);
    });
    it('finds nothing for an unknown ref', () => {
      assert.deepEqual(names('zzz'), []);
    });
    it('treats % and _ in the ref literally, not as LIKE wildcards', () => {
      assert.deepEqual(names('%'), []);
      assert.deepEqual(names('_bc'), []);
      assert.deepEqual(names('a_c'), []);
      assert.deepEqual(names('x_y%'), ['odd']);
      assert.deepEqual(names('x\\'), []);
    });
  });
});

describe('Store images and kernels', () => {
  let store: Store;
  beforeEach(() => {
    store = new Store(':memory:');
  });
  afterEach(() => {
    store.close();
  });

  it('upserts images by name', () => {
    const image: ImageInfo = {
      name: 'debian-bookworm', path: '/c/a.ext4', sizeBytes: 10, source: 'recipe', createdAt: '2025-01-01T00:00:00.000Z', boot: 'systemd', hasSshd: true,
      ref: null, digest: null, run: null, layers: [], kernelRef: null,
    };
    store.upsertImage(image);
    assert.deepEqual(store.getImage('debian-bookworm'), image);
    const rebuilt = { ...image, path: '/c/b.ext4', sizeBytes: 20, createdAt: '2025-02-01T00:00:00.000Z' };
    store.upsertImage(rebuilt);
    assert.deepEqual(store.listImages(), [rebuilt]);
    assert.equal(store.getImage('other'), null);
  });

  it('keeps how a pulled image boots and runs, and deletes images', () => {
    const pulled: ImageInfo = {
      name: 'busybox', path: '/c/b/rootfs.ext4', sizeBytes: 30, source: 'oci:r/busybox:latest', createdAt: '2025-01-01T00:00:00.000Z', boot: 'agent', hasSshd: false,
      ref: 'r/busybox:latest', digest: `sha256:${'a'.repeat(64)}`, layers: [`sha256:${'b'.repeat(64)}`], kernelRef: 'k1',
      run: { env: ['A=1'], workingDir: '/w', user: 'app', uid: 1000, gid: 1000, entrypoint: null, cmd: ['sh'] },
    };
    store.upsertImage(pulled);
    assert.deepEqual(store.getImage('busybox'), pulled);
    store.deleteImage('busybox');
    assert.equal(store.getImage('busybox'), null);
  });

  it('upserts kernels by id and lists them in id order', () => {
    const k: KernelInfo = { id: 'host-6.1', version: '6.1', kernelPath: '/k/v', initrdPath: '/k/i', source: 'host', createdAt: '2025-01-01T00:00:00.000Z', format: 'elf' };
    store.upsertKernel({ ...k, id: 'host-6.9', version: '6.9' });
    store.upsertKernel(k);
    store.upsertKernel({ ...k, initrdPath: '/k/i2' });
    assert.deepEqual(store.getKernel('host-6.1'), { ...k, initrdPath: '/k/i2' });
    assert.deepEqual(store.listKernels().map((x) => x.id), ['host-6.1', 'host-6.9']);
    assert.equal(store.getKernel('none'), null);
  });
});
