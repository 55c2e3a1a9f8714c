import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { createRpcHandlers, type RpcServices } from '../../src/daemon/rpc-handlers.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { CallContext } from '../../src/protocol/jsonrpc.ts';
import type { WorkspacePrepareResult, DaemonStatus, ImageInfo, ImagePullResult, ImageShowResult, KernelInfo, VmInfo, VmStatsResult } from '../../src/protocol/methods.ts';
import { fails } from '../fakes/expect-error.ts';

const VM: VmInfo = {
  id: '0123456789abcdef0123456789abcdef', name: 'calm-otter', state: 'running', image: 'debian-bookworm', kernel: 'k1',
  vcpus: 1, memoryMib: 512, diskGib: 8, ip: '172.30.0.2', mac: '52:54:00:00:00:02', tap: 'bgt2', accel: 'tcg', pid: 1000,
  createdAt: '2026-11-23T12:00:00.000Z', nat: false, workspace: null,
};

/** Services that record what reached them: a refused call must reach none. */
function fakeServices(calls: Array<[string, unknown[]]>, shutdowns: { count: number }): RpcServices {
  const record = <T>(name: string, result: T) => (...args: unknown[]): T => {
    calls.push([name, args.filter((a) => !(typeof a === 'object' && a !== null && 'signal' in a))]);
    return result;
  };
  return {
    vms: {
      create: record('vms.create', Promise.resolve(VM)),
      start: record('vms.start', Promise.resolve(VM)),
      stop: record('vms.stop', Promise.resolve(VM)),
      delete: record('vms.delete', Promise.resolve({ id: VM.id, name: VM.name })),
      list: record('vms.list', [VM]),
      show: record('vms.show', VM),
      sshTarget: record('vms.sshTarget', { vmId: VM.id, name: VM.name, ip: VM.ip, user: 'root', keyPath: 'k', knownHostsPath: 'h', hostKeyAlias: 'a', netns: null, workdir: '/root' }),
      logs: record('vms.logs', { data: '', offset: 0 }),
      restart: record('vms.restart', Promise.resolve(VM)),
      kill: record('vms.kill', Promise.resolve(VM)),
      set: record('vms.set', Promise.resolve(VM)),
      prune: record('vms.prune', Promise.resolve({ deleted: [], failed: [] })),
    },
    images: {
      list: record('images.list', []),
      pull: record('images.pull', Promise.resolve({} as ImagePullResult)),
      show: record('images.show', {} as ImageShowResult),
      delete: record('images.delete', { name: 'x' }),
      cacheList: record('images.cacheList', []),
      cachePrune: record('images.cachePrune', { removed: 0, freedBytes: 0 }),
      makeBundle: record('images.makeBundle', Promise.resolve({ path: '/b', sha256: 'a', size: 1, name: 'x', kernelRef: null })),
      register: record('images.register', Promise.resolve({} as ImageInfo)),
      promote: record('images.promote', Promise.resolve({} as ImageInfo)),
    },
    kernels: {
      list: record('kernels.list', []),
      catalog: record('kernels.catalog', Promise.resolve([])),
      pull: record('kernels.pull', Promise.resolve({} as KernelInfo)),
      import: record('kernels.import', Promise.resolve({} as KernelInfo)),
      show: record('kernels.show', { kernel: {} as KernelInfo, images: [], vms: [] }),
      delete: record('kernels.delete', { name: 'k' }),
    },
    workspaces: {
      create: record('workspaces.create', Promise.resolve(VM)),
      prepare: record('workspaces.prepare', Promise.resolve({} as WorkspacePrepareResult)),
      bootstrap: record('workspaces.bootstrap', Promise.resolve({ config: null, mode: 'foreground' as const, log: '/l' })),
      export: record('workspaces.export', Promise.resolve({ baseCommit: 'abc', patchBase64: '', bytes: 0 })),
    },
    guests: {
      health: record('guests.health', Promise.resolve({ vm: VM.name, systemState: 'running', uptimeSec: 1, agentVersion: '0.1.0', agentOutdated: false })),
      ports: record('guests.ports', Promise.resolve({ vm: VM.name, ports: [], forwards: [] })),
      stats: record('guests.stats', Promise.resolve({} as VmStatsResult)),
      forward: record('guests.forward', Promise.resolve({ hostPort: 8080, vmId: VM.id, guestPort: 80, createdAt: VM.createdAt })),
      unforward: record('guests.unforward', { hostPort: 8080, vmId: VM.id, guestPort: 80, createdAt: VM.createdAt }),
    },
    version: record('version', { version: '0.1.0', commit: null, builtAt: null, node: 'v24', pid: 1 }),
    status: record('status', Promise.resolve({} as DaemonStatus)),
    doctor: record('doctor', Promise.resolve([])),
    shutdown: () => {
      shutdowns.count++;
    },
  };
}

describe('bangerd RPC handlers', () => {
  let calls: Array<[string, unknown[]]>;
  let shutdowns: { count: number };
  let handlers: ReturnType<typeof createRpcHandlers>;
  const ctx: CallContext = { signal: new AbortController().signal, progress: () => undefined };

  beforeEach(() => {
    calls = [];
    shutdowns = { count: 0 };
    handlers = createRpcHandlers(fakeServices(calls, shutdowns));
  });

  const call = (method: string, params: unknown): Promise<unknown> => handlers.get(method)!(params, ctx);

  /** The call is refused with INVALID_ARGUMENT matching `pattern`, with a hint, and no service saw it. */
  async function refused(method: string, params: unknown, pattern: RegExp): Promise<void> {
    await assert.rejects(call(method, params), fails('INVALID_ARGUMENT', pattern, { hint: true }));
    assert.deepEqual(calls, [], 'no service was called');
  }

  it('has a handler for every method in the protocol, and only those', () => {
    assert.deepEqual([...handlers.keys()].sort(), [
      'daemon.doctor', 'daemon.shutdown', 'daemon.status', 'daemon.version', 'image.cache.list', 'image.cache.prune', 'image.delete', 'image.list', 'image.makeBundle', 'image.promote', 'image.pull', 'image.register', 'image.show', 'kernel.catalog', 'kernel.delete', 'kernel.import', 'kernel.list', 'kernel.pull', 'kernel.show',
      'vm.create', 'vm.delete', 'vm.forward', 'vm.health', 'vm.kill', 'vm.list', 'vm.logs', 'vm.ports', 'vm.prune', 'vm.restart', 'vm.set', 'vm.show',
      'vm.ssh', 'vm.start', 'vm.stats', 'vm.stop', 'vm.unforward', 'vm.workspace.bootstrap', 'vm.workspace.export', 'vm.workspace.prepare',
    ]);
  });

  it('refuses the two ways of naming a kernel at once for image register, and make-bundle without a source', async () => {
    await refused('image.register', { name: 'x', rootfs: '/r.ext4', kernelRef: 'k', kernel: '/k', initrd: '/i' }, /kernelRef and kernel\/initrd exclude each other/);
    await refused('image.register', { name: 'x', rootfs: '/r.ext4', kernel: '/k' }, /kernel and initrd go together/);
    await refused('image.register', { name: 'x', rootfs: 'relative.ext4' }, /absolute path/);
    await refused('image.makeBundle', { out: '/b.tar.zst' }, /either fromImage or rootfsTar/);
    await refused('image.pull', { ref: 'x', name: 'Bad/Name' }, /name/);
  });

  it('hands a create with a workspace to the workspace service, and a bootstrap its mode', async () => {
    await refused('vm.create', { workspace: { path: 'relative/app' } }, /workspace\.path must be an absolute path/);
    await refused('vm.workspace.bootstrap', { ref: 'calm', mode: 'skip' }, /mode/);
    await call('vm.create', { name: 'calm-otter', workspace: { path: '/src/app', includeUntracked: true } });
    await call('vm.workspace.bootstrap', { ref: 'calm', mode: 'background' });
    assert.deepEqual(calls, [
      ['workspaces.create', [{ name: 'calm-otter', workspace: { path: '/src/app', includeUntracked: true } }]],
      ['workspaces.bootstrap', [{ ref: 'calm', mode: 'background' }]],
    ]);
  });

  it('passes parsed params to the service', async () => {
    await call('vm.create', { name: 'calm-otter', vcpus: 2, memoryMib: 1024, diskGib: 4, start: false, sshTimeoutSec: 30 });
    await call('vm.start', { ref: 'calm', waitSsh: true });
    await call('vm.logs', { ref: 'calm', offset: 10 });
    await call('vm.logs', { ref: 'calm' });
    await call('vm.stop', { ref: 'calm' });
    assert.deepEqual(calls, [
      ['vms.create', [{ name: 'calm-otter', vcpus: 2, memoryMib: 1024, diskGib: 4, start: false, sshTimeoutSec: 30 }]],
      ['vms.start', ['calm', { ref: 'calm', waitSsh: true }]],
      ['vms.logs', ['calm', 10]],
      ['vms.logs', ['calm', 0]],
      ['vms.stop', ['calm']],
    ]);
  });

  it('passes the params of restart, kill, set and prune to the service', async () => {
    await call('vm.restart', { ref: 'calm', waitSsh: true, sshTimeoutSec: 9 });
    await call('vm.kill', { ref: 'calm' });
    await call('vm.kill', { ref: 'calm', signal: 'SIGTERM' });
    await call('vm.set', { ref: 'calm', vcpus: 2, diskGib: 16 });
    await call('vm.prune', {});
    await call('vm.prune', { ids: ['a', 'b'] });
    assert.deepEqual(calls, [
      ['vms.restart', ['calm', { ref: 'calm', waitSsh: true, sshTimeoutSec: 9 }]],
      ['vms.kill', ['calm', undefined]],
      ['vms.kill', ['calm', 'SIGTERM']],
      ['vms.set', [{ ref: 'calm', vcpus: 2, diskGib: 16 }]],
      ['vms.prune', [undefined]],
      ['vms.prune', [['a', 'b']]],
    ]);
  });

  it('passes guest queries and forwards to the guest service, refusing ports outside 1-65535', async () => {
    await refused('vm.forward', { ref: 'calm', guestPort: 0 }, /guestPort/);
    await refused('vm.forward', { ref: 'calm', guestPort: 80, hostPort: 70000 }, /hostPort/);
    await refused('vm.unforward', { ref: 'calm' }, /hostPort/);
    await call('vm.ports', { ref: 'calm' });
    await call('vm.stats', { ref: 'calm' });
    await call('vm.health', { ref: 'calm' });
    await call('vm.forward', { ref: 'calm', guestPort: 80 });
    await call('vm.forward', { ref: 'calm', guestPort: 80, hostPort: 8080 });
    await call('vm.unforward', { ref: 'calm', hostPort: 8080 });
    assert.deepEqual(calls, [
      ['guests.ports', ['calm', ctx.signal]],
      ['guests.stats', ['calm']],
      ['guests.health', ['calm']],
      ['guests.forward', ['calm', 80, undefined]],
      ['guests.forward', ['calm', 80, 8080]],
      ['guests.unforward', ['calm', 8080]],
    ]);
  });

  it('refuses vm.kill with a signal it does not send, and vm.set or vm.prune with bad values', async () => {
    await refused('vm.kill', { ref: 'calm', signal: 'SIGUSR1' }, /signal/);
    await refused('vm.kill', { ref: 'calm', signal: 9 }, /signal/);
    await refused('vm.set', { ref: 'calm', diskGib: 0 }, /diskGib must be at least 1/);
    await refused('vm.set', { ref: 'calm', cpus: 2 }, /unknown field "cpus"/);
    await refused('vm.prune', { ids: 'all' }, /ids/);
  });

  it('refuses vm.create with a name that is not a string', async () => {
    await refused('vm.create', { name: 123 }, /^vm\.create: name must be a string \(got number\)$/);
    await refused('vm.create', { name: ['a'] }, /^vm\.create: name must be a string \(got a list\)$/);
  });

  it('refuses vm.create with an image that is not a string', async () => {
    await refused('vm.create', { image: { a: 1 } }, /^vm\.create: image must be a string \(got an object\)$/);
  });

  it('refuses vm.create with a name that is not a VM name', async () => {
    await refused('vm.create', { name: 'Bad_Name' }, /^vm\.create: name must be lowercase letters, digits and "-"/);
    await refused('vm.create', { name: 'a'.repeat(64) }, /name must be lowercase/);
  });

  for (const [field, bad, pattern] of [
    ['vcpus', 0, /vcpus must be at least 1 \(got 0\)/],
    ['vcpus', 65, /vcpus must be at most 64 \(got 65\)/],
    ['vcpus', 1.5, /vcpus must be a whole number \(got 1\.5\)/],
    ['memoryMib', 127, /memoryMib must be at least 128/],
    ['memoryMib', 1024 * 1024 + 1, /memoryMib must be at most 1048576/],
    ['diskGib', 0, /diskGib must be at least 1/],
    ['diskGib', 16385, /diskGib must be at most 16384/],
    ['sshTimeoutSec', 3601, /sshTimeoutSec must be at most 3600/],
    ['sshTimeoutSec', '10', /sshTimeoutSec must be a number \(got string\)/],
    ['start', 'yes', /start must be true or false \(got string\)/],
  ] as const) {
    it(`refuses vm.create with ${field}: ${JSON.stringify(bad)}`, async () => {
      await refused('vm.create', { [field]: bad }, pattern);
    });
  }

  it('refuses an unknown field, naming the known ones in the hint', async () => {
    await assert.rejects(call('vm.create', { name: 'ok', cpus: 2 }), (err: unknown) => {
      fails('INVALID_ARGUMENT', /^vm\.create: unknown field "cpus"$/)(err);
      assert.match((err as BangerError).hint!, /vcpus/);
      return true;
    });
    assert.deepEqual(calls, []);
  });

  it('refuses vm.logs with an offset that is not a whole number of at least 0', async () => {
    await refused('vm.logs', { ref: 'calm', offset: 'abc' }, /^vm\.logs: offset must be a number \(got string\)$/);
    await refused('vm.logs', { ref: 'calm', offset: 1.5 }, /^vm\.logs: offset must be a whole number \(got 1\.5\)$/);
    await refused('vm.logs', { ref: 'calm', offset: -1 }, /^vm\.logs: offset must be at least 0 \(got -1\)$/);
  });

  for (const method of ['vm.start', 'vm.stop', 'vm.delete', 'vm.show', 'vm.ssh', 'vm.logs', 'vm.restart', 'vm.kill', 'vm.set']) {
    it(`${method} refuses a missing, empty, non-string or 1 MB ref`, async () => {
      await refused(method, {}, new RegExp(`^${method.replace('.', '\\.')}: ref is required$`));
      await refused(method, undefined, /ref is required/);
      await refused(method, { ref: '' }, /ref must not be empty/);
      await refused(method, { ref: 5 }, /ref must be a string \(got number\)/);
      await refused(method, { ref: 'x'.repeat(1024 * 1024) }, /ref must be at most 64 characters \(got 1048576\)/);
    });
  }

  for (const method of ['vm.list', 'image.list', 'kernel.list', 'daemon.version', 'daemon.status', 'daemon.shutdown']) {
    it(`${method} takes {} or no params, and refuses null or fields`, async () => {
      await call(method, {});
      await call(method, undefined);
      const reached = calls.length;
      await assert.rejects(call(method, null), fails('INVALID_ARGUMENT', /params must be an object \(got null\)/, { hint: true }));
      await assert.rejects(call(method, { verbose: true }), fails('INVALID_ARGUMENT', /unknown field "verbose"/, { hint: true }));
      await assert.rejects(call(method, [1]), fails('INVALID_ARGUMENT', /params must be an object \(got a list\)/, { hint: true }));
      assert.equal(calls.length, reached, 'refused calls reach no service');
    });
  }

  it('answers daemon.shutdown first and then asks the daemon to shut down, without exiting', async () => {
    assert.deepEqual(await call('daemon.shutdown', {}), { ok: true });
    assert.equal(shutdowns.count, 0, 'not before the answer is written');
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(shutdowns.count, 1);
  });
});
