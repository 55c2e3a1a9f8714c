// VmService's kill, restart, set and prune over the fakes.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { VmInfo } from '../../src/protocol/methods.ts';
import { fails } from '../fakes/expect-error.ts';
import { callContext, vmServiceHarness, type VmServiceHarness } from '../fakes/vm-service-harness.ts';

const GIB = 1024 ** 3;

describe('VmService lifecycle', { timeout: 30_000 }, () => {
  let h: VmServiceHarness;

  beforeEach(() => {
    h = vmServiceHarness();
  });

  afterEach(() => h.dispose());

  const create = (name: string, extra: { start?: boolean; diskGib?: number } = {}): Promise<VmInfo> => h.service.create({ name, ...extra }, callContext().ctx);
  /** The guest commands banger ran over ssh (the last argument of each ssh call). */
  const guestCommands = (): string[] => h.runner.callsTo('ssh').map((c) => c.args.at(-1)!);

  describe('kill', () => {
    it('sends SIGKILL to the VMM without a guest sync; the VM ends stopped and its tap is removed', async () => {
      const vm = await create('web');
      const killed = await h.service.kill('web');
      assert.deepEqual(h.driver.kills, [{ vmId: vm.id, pid: vm.pid, signal: 'SIGKILL' }]);
      assert.deepEqual(h.driver.stops, [], 'no clean quit');
      assert.ok(!guestCommands().includes('sync'), 'no guest sync');
      assert.deepEqual([killed.state, killed.pid], ['stopped', null]);
      assert.deepEqual([...h.ops.taps], []);
      assert.equal(h.driver.aliveCount(), 0);
    });

    it('sends the signal asked for', async () => {
      await create('web');
      await h.service.kill('web', 'SIGTERM');
      assert.equal(h.driver.kills[0]!.signal, 'SIGTERM');
    });

    it('a VMM that survives the signal fails with VMM_FAILED and the VM stays running', async () => {
      await create('web');
      h.driver.ignoresSignals = true;
      await assert.rejects(h.service.kill('web', 'SIGTERM'), fails('VMM_FAILED'));
      assert.equal(h.store.listVms()[0]!.state, 'running');
      const after = await h.service.kill('web');
      assert.equal(after.state, 'stopped');
    });

    it('leaves a stopped VM stopped, and kills a VMM a launch left unrecorded', async () => {
      const vm = await create('web', { start: false });
      assert.equal((await h.service.kill('web')).state, 'created');
      assert.deepEqual(h.driver.kills, []);
      const pid = h.driver.startUnrecorded(vm.id, h.service.files(vm.id));
      const after = await h.service.kill(vm.id.slice(0, 6));
      assert.deepEqual(h.driver.kills, [{ vmId: vm.id, pid, signal: 'SIGKILL' }]);
      assert.equal(after.state, 'stopped');
      assert.equal(h.driver.aliveCount(), 0);
    });

    it('refuses an unknown VM with a hint', async () => {
      await assert.rejects(h.service.kill('nope'), fails('VM_NOT_FOUND', /nope/, { hint: true }));
    });
  });

  describe('restart', () => {
    it('stops a running VM as vm stop does (guest sync) and boots it again', async () => {
      const vm = await create('web');
      const again = await h.service.restart('web', { waitSsh: true }, callContext().ctx);
      assert.equal(again.state, 'running');
      assert.notEqual(again.pid, vm.pid);
      assert.equal(h.driver.boots.length, 2);
      assert.deepEqual(h.driver.stops.map((s) => s.pid), [vm.pid]);
      assert.deepEqual(h.agents.syncs, ['web']);
      assert.deepEqual([...h.ops.taps], [vm.tap]);
    });

    it('only starts a VM that is stopped', async () => {
      await create('web', { start: false });
      const vm = await h.service.restart('web', { waitSsh: false }, callContext().ctx);
      assert.equal(vm.state, 'running');
      assert.equal(h.driver.boots.length, 1);
      assert.deepEqual(h.driver.stops, []);
    });
  });

  describe('set', () => {
    it('refuses a running VM, naming vm stop', async () => {
      await create('web');
      await assert.rejects(h.service.set({ ref: 'web', vcpus: 2 }), (err: unknown) => {
        fails('VM_BAD_STATE', /web is running/)(err);
        assert.match((err as Error & { hint: string }).hint, /banger vm stop web/);
        return true;
      });
    });

    it('changes vCPUs and memory of a stopped VM, which its next boot uses', async () => {
      await create('web');
      await h.service.stop('web');
      const vm = await h.service.set({ ref: 'web', vcpus: 3, memoryMib: 1536 });
      assert.deepEqual([vm.vcpus, vm.memoryMib], [3, 1536]);
      assert.deepEqual(h.runner.callsTo('resize2fs'), [], 'the disk is not touched');
      await h.service.start('web', { waitSsh: false }, callContext().ctx);
      assert.deepEqual([h.driver.boots.at(-1)!.vcpus, h.driver.boots.at(-1)!.memoryMib], [3, 1536]);
    });

    it('grows the work disk: e2fsck, the file (sparse), then resize2fs', async () => {
      const vm = await create('web', { start: false, diskGib: 1 });
      const disk = h.service.files(vm.id).workDisk;
      const after = await h.service.set({ ref: 'web', diskGib: 2 });
      assert.equal(after.diskGib, 2);
      assert.equal(fs.statSync(disk).size, 2 * GIB);
      assert.deepEqual(h.runner.calls.filter((c) => ['e2fsck', 'resize2fs'].includes(c.command)).map((c) => [c.command, ...c.args]), [
        ['e2fsck', '-f', '-p', disk],
        ['resize2fs', disk],
      ]);
    });

    it('refuses to shrink the work disk, before touching it', async () => {
      await create('web', { start: false, diskGib: 4 });
      await assert.rejects(h.service.set({ ref: 'web', diskGib: 2 }), fails('INVALID_ARGUMENT', /4 GiB and only grows/, { hint: true }));
      assert.deepEqual(h.runner.callsTo('e2fsck'), []);
      assert.equal(h.store.listVms()[0]!.diskGib, 4);
    });

    it('a disk that cannot be checked or resized keeps its recorded size, and the same vm set can be run again', async () => {
      await create('web', { start: false, diskGib: 1 });
      h.runner.on('e2fsck', () => ({ code: 4, stderr: 'UNEXPECTED INCONSISTENCY' }));
      await assert.rejects(h.service.set({ ref: 'web', diskGib: 2 }), fails('TOOL_FAILED', /UNEXPECTED INCONSISTENCY/, { hint: true }));
      assert.deepEqual(h.runner.callsTo('resize2fs'), []);
      h.runner.on('e2fsck', () => ({ code: 1 }));
      h.runner.on('resize2fs', () => ({ code: 1, stderr: 'resize2fs: No space left on device' }));
      await assert.rejects(h.service.set({ ref: 'web', diskGib: 2 }), fails('TOOL_FAILED', /No space left/));
      assert.equal(h.store.listVms()[0]!.diskGib, 1);
      h.runner.on('resize2fs', () => ({ code: 0 }));
      assert.equal((await h.service.set({ ref: 'web', diskGib: 2 })).diskGib, 2);
    });

    it('needs at least one size', async () => {
      await create('web', { start: false });
      await assert.rejects(h.service.set({ ref: 'web' }), fails('INVALID_ARGUMENT', /--cpus, --memory or --disk/));
    });
  });

  describe('prune', () => {
    it('deletes every VM that is not running and keeps the running ones', async () => {
      const running = await create('up');
      await create('down');
      await h.service.stop('down');
      await create('fresh', { start: false });
      const result = await h.service.prune();
      assert.deepEqual(result.deleted.map((v) => v.name).sort(), ['down', 'fresh']);
      assert.deepEqual(result.failed, []);
      assert.deepEqual(h.store.listVms().map((v) => v.id), [running.id]);
      assert.deepEqual(fs.readdirSync(h.vmsDir), [running.id]);
    });

    it('with ids, deletes only those, and not one that was started meanwhile', async () => {
      const a = await create('a', { start: false });
      const b = await create('b', { start: false });
      await create('c', { start: false });
      await h.service.start('b', { waitSsh: false }, callContext().ctx);
      const result = await h.service.prune([a.id, b.id]);
      assert.deepEqual(result.deleted, [{ id: a.id, name: 'a' }]);
      assert.deepEqual(h.store.listVms().map((v) => v.name).sort(), ['b', 'c']);
    });

    it('reports a VM it could not delete and deletes the others', async () => {
      await create('a');
      await create('b');
      await h.service.stop('a');
      await h.service.stop('b');
      h.ops.fail('deleteTap');
      const result = await h.service.prune();
      assert.deepEqual(result.deleted, []);
      assert.deepEqual(result.failed.map((f) => [f.name, f.error.code]), [['a', 'NETWORK_FAILED'], ['b', 'NETWORK_FAILED']]);
      assert.match(result.failed[0]!.error.hint!, /banger vm delete a/);
      h.ops.succeed('deleteTap');
      assert.equal((await h.service.prune()).deleted.length, 2);
    });
  });
});
