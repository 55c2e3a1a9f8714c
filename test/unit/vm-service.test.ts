import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { VM_NAME_PATTERN } from '../../src/protocol/daemon-schemas.ts';
import { readCpio } from '../../src/kernel/cpio.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import type { BangerConfig } from '../../src/system/config.ts';
import type { FakeCall } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { BASE_INITRD, callContext, vmServiceHarness, type VmServiceHarness } from '../fakes/vm-service-harness.ts';
import type { Clock } from '../../src/system/clock.ts';

type Harness = VmServiceHarness;

function makeHarness(configure: (config: BangerConfig) => void = () => undefined, clock: Clock = new FakeClock()): Harness {
  return vmServiceHarness({ configure, clock });
}

const makeCtx = callContext;

function vmIdOf(call: FakeCall): string {
  const alias = call.args.find((a) => a.startsWith('HostKeyAlias=banger-'));
  assert.ok(alias, 'ssh call pins a host key alias');
  return alias.slice('HostKeyAlias=banger-'.length);
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

// The timeout turns a hang into a failure; no test asserts on time.
describe('VmService', { timeout: 30_000 }, () => {
  let h: Harness;

  beforeEach(() => {
    h = makeHarness();
  });

  afterEach(() => {
    h.store.close();
    fs.rmSync(h.dir, { recursive: true, force: true });
  });

  /** Rebuilds the harness on a clock whose sleeps end only when their signal fires (a grace period that never runs out). */
  function useStillClock(): void {
    h.store.close();
    fs.rmSync(h.dir, { recursive: true, force: true });
    h = makeHarness(() => undefined, { now: () => 0, sleep: (_ms, signal) => new Promise((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true })) });
  }

  /** Nothing of any VM is left: no row, no tap, no running VMM, no files. */
  function assertNothingLeft(): void {
    assert.deepEqual(h.store.listVms(), [], 'no VM rows');
    assert.deepEqual([...h.ops.taps], [], 'no taps');
    assert.equal(h.driver.aliveCount(), 0, 'no VMM running');
    const left = fs.existsSync(h.vmsDir) ? fs.readdirSync(h.vmsDir) : [];
    assert.deepEqual(left, [], 'no VM directories');
  }

  describe('create', () => {
    it('boots a VM and records it running, with its address, tap and files', async () => {
      const { ctx, events } = makeCtx();
      const vm = await h.service.create({ name: 'web', vcpus: 2, memoryMib: 1024, diskGib: 4 }, ctx);

      assert.equal(vm.state, 'running');
      assert.equal(vm.name, 'web');
      assert.equal(vm.ip, '172.30.0.2');
      assert.equal(vm.tap, `bgt${vm.id}`);
      assert.match(vm.id, /^[0-9a-f]{12}$/);
      assert.match(vm.mac, /^52:54:00(:[0-9a-f]{2}){3}$/);
      assert.equal(vm.accel, 'tcg');
      assert.equal(vm.kernel, h.kernel.id);
      assert.equal(vm.image, 'debian-bookworm');
      assert.deepEqual([vm.vcpus, vm.memoryMib, vm.diskGib], [2, 1024, 4]);
      assert.ok(vm.pid !== null && h.driver.isAlive(vm.id, vm.pid));
      assert.deepEqual(h.store.getVm(vm.id), vm);

      assert.deepEqual([...h.ops.taps], [vm.tap]);
      assert.deepEqual(h.ops.callsTo('ensureBridge'), [{ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null }]);
      const boot = h.driver.boots[0]!;
      assert.deepEqual(boot.net, { tap: vm.tap, mac: vm.mac });
      assert.deepEqual([boot.vcpus, boot.memoryMib, boot.accel, boot.netns], [2, 1024, 'tcg', null]);
      assert.equal(boot.files.dir, path.join(h.vmsDir, vm.id));

      // The guest answered ssh (`true`) with banger's key and the pinned host key.
      const ssh = h.runner.callsTo('ssh');
      assert.equal(ssh.length, 1);
      assert.equal(ssh[0]!.args.at(-1), 'true');
      assert.ok(ssh[0]!.args.includes(`root@${vm.ip}`));
      assert.ok(ssh[0]!.args.includes(`UserKnownHostsFile=${path.join(h.vmsDir, vm.id, 'known_hosts')}`));

      assert.equal(events[0]!.stage, 'spec');
      assert.equal(events[0]!.message, 'web: 2 vCPU, 1024 MiB RAM, 4 GiB disk, image debian-bookworm, fake/tcg (fake driver)');
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'disk', 'network', 'boot', 'ssh']);
    });

    it('decides KVM or TCG alongside the image, disks and network, once, and boots with the decision', async () => {
      const open = h.driver.decideLater({ accel: 'kvm', reason: 'KVM booted a test guest in 0.4s' });
      const { ctx, events } = makeCtx();
      const creating = h.service.create({ name: 'web' }, ctx);
      // The decision is still out, yet the disks and the network are made meanwhile.
      for (let i = 0; i < 20 && !events.some((e) => e.stage === 'network'); i++) await flush();
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'disk', 'network']);
      assert.match(events[0]!.message, /image debian-bookworm, fake \(KVM or TCG: probing KVM alongside the set-up, once per host boot\)$/);
      assert.equal(h.driver.boots.length, 0, 'no boot before the decision');
      open();
      const vm = await creating;
      assert.equal(vm.accel, 'kvm');
      assert.equal(h.driver.boots[0]!.accel, 'kvm');
      assert.deepEqual(h.driver.accelCalls, [{ kernel: h.kernel.id, fresh: false }], 'one decision per create');
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'disk', 'network', 'accel', 'boot', 'ssh']);
      assert.equal(events[3]!.message, 'fake/kvm (KVM booted a test guest in 0.4s)');
    });

    it('puts a decision that comes quickly into the spec line, with no separate accel line', async () => {
      h.driver.accelKnown = false;
      h.driver.accelChoice = { accel: 'tcg', reason: 'KVM cannot run this guest here (failed to set MSR 0x10a)' };
      h.driver.accelGate = Promise.resolve();
      const { ctx, events } = makeCtx();
      await h.service.create({ name: 'quick' }, ctx);
      assert.match(events[0]!.message, /image debian-bookworm, fake\/tcg \(KVM cannot run this guest here \(failed to set MSR 0x10a\)\)$/);
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'disk', 'network', 'boot', 'ssh']);
    });

    it('holds the stages back while the decision is under way, and puts a decision that comes in time in the spec line', async () => {
      // The grace period never runs out: only the decision releases the spec line.
      useStillClock();
      const open = h.driver.decideLater({ accel: 'kvm', reason: 'KVM booted a test guest in 0.4s' });
      const { ctx, events } = makeCtx();
      const creating = h.service.create({ name: 'held' }, ctx);
      for (let i = 0; i < 20 && h.ops.taps.size === 0; i++) await flush();
      assert.equal(h.ops.taps.size, 1, 'the network is made while the decision is under way');
      assert.equal(events.length, 0, 'nothing is printed before the spec line');
      open();
      await creating;
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'disk', 'network', 'boot', 'ssh']);
      assert.match(events[0]!.message, /fake\/kvm \(KVM booted a test guest in 0\.4s\)$/);
    });

    it('still prints the spec line and the held stages when the create ends before the decision', async () => {
      useStillClock();
      h.driver.accelKnown = false;
      h.driver.accelGate = new Promise(() => undefined);
      const { ctx, events } = makeCtx();
      await h.service.create({ name: 'early', start: false }, ctx);
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'disk']);
      assert.match(events[0]!.message, /KVM or TCG: probing/);
      const failing = makeCtx();
      await assert.rejects(h.service.create({ name: 'bad', image: 'nosuch' }, failing.ctx), fails('IMAGE_NOT_FOUND'));
      assert.deepEqual(failing.events.map((e) => e.stage), ['spec']);
    });

    it('checks the accelerator at once even when a fresh decision is asked for', async () => {
      h.driver.knownAccel = () => {
        throw new BangerError('MISSING_TOOL', 'qemu-system-x86_64 is not installed');
      };
      await assert.rejects(h.service.create({ name: 'web', freshAccel: true }, makeCtx().ctx), fails('MISSING_TOOL'));
      assertNothingLeft();
    });

    it('asks for a fresh decision when told to, and uses a known one without asking', async () => {
      await h.service.create({ name: 'known' }, makeCtx().ctx);
      assert.deepEqual(h.driver.accelCalls, []);
      await h.service.create({ name: 'fresh', freshAccel: true }, makeCtx().ctx);
      assert.deepEqual(h.driver.accelCalls, [{ kernel: h.kernel.id, fresh: true }]);
    });

    it('undoes the create when the decision fails, and reports that failure', async () => {
      h.driver.accelKnown = false;
      h.driver.accelGate = Promise.reject(new BangerError('MISSING_TOOL', 'qemu-system-x86_64 is not installed'));
      await assert.rejects(h.service.create({ name: 'web' }, makeCtx().ctx), fails('MISSING_TOOL'));
      assertNothingLeft();
    });

    it('writes the disks, a pinned known_hosts, and an initrd of the base plus the VM configuration', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const files = h.service.files(vm.id);
      assert.ok(fs.existsSync(files.rootDisk) && fs.existsSync(files.workDisk));
      assert.deepEqual(h.driver.preparedDisks, [files]);

      const hostKeyPub = fs.readFileSync(path.join(files.dir, 'ssh_host_ed25519_key.pub'), 'utf8');
      const knownHosts = fs.readFileSync(path.join(files.dir, 'known_hosts'), 'utf8');
      assert.equal(knownHosts, `banger-${vm.id} ${hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`);
      assert.deepEqual(h.runner.callsTo('ssh-keygen')[0]!.args.slice(-2), ['-f', path.join(files.dir, 'ssh_host_ed25519_key')]);

      const initrd = fs.readFileSync(files.initrd);
      assert.deepEqual(initrd.subarray(0, BASE_INITRD.length), BASE_INITRD);
      const entries = new Map(readCpio(initrd.subarray(BASE_INITRD.length)).map((e) => [e.path, e.data!.toString()]));
      const env = entries.get('banger/vm.env')!;
      assert.match(env, /^BANGER_HOSTNAME='web'$/m);
      assert.match(env, /^BANGER_IP='172\.30\.0\.2'$/m);
      assert.match(env, /^BANGER_GATEWAY='172\.30\.0\.1'$/m);
      assert.match(env, /^BANGER_PREFIX='24'$/m);
      assert.equal(entries.get('banger/authorized_keys'), 'ssh-ed25519 AAAAbanger banger\n');
      assert.equal(entries.get('banger/ssh_host_ed25519_key.pub'), hostKeyPub);
    });

    it('fills in a generated name and the configured defaults', async () => {
      const vm = await h.service.create({}, makeCtx().ctx);
      assert.match(vm.name, VM_NAME_PATTERN);
      const d = h.config.vmDefaults;
      assert.deepEqual([vm.vcpus, vm.memoryMib, vm.diskGib, vm.image], [d.vcpus, d.memoryMib, d.diskGib, d.image]);
    });

    it('with start: false only creates the VM; start boots it later', async () => {
      const vm = await h.service.create({ name: 'later', start: false }, makeCtx().ctx);
      assert.equal(vm.state, 'created');
      assert.equal(h.store.getVm(vm.id)!.state, 'created');
      assert.equal(h.driver.boots.length, 0);
      assert.deepEqual([...h.ops.taps], []);
      assert.ok(fs.existsSync(h.service.files(vm.id).initrd));

      const { ctx, events } = makeCtx();
      const started = await h.service.start('later', { waitSsh: true }, ctx);
      assert.equal(started.state, 'running');
      assert.deepEqual([...h.ops.taps], [vm.tap]);
      assert.equal(events[0]!.stage, 'spec');
    });

    it('refuses a name that is taken, creating nothing more', async () => {
      const first = await h.service.create({ name: 'web' }, makeCtx().ctx);
      await assert.rejects(h.service.create({ name: 'web' }, makeCtx().ctx), (err: unknown) => {
        fails('VM_NAME_TAKEN', /web/)(err);
        assert.match((err as BangerError).hint!, /banger vm delete web/);
        return true;
      });
      assert.deepEqual(h.store.listVms().map((v) => v.id), [first.id]);
      assert.equal(h.driver.boots.length, 1);
      assert.deepEqual([...h.ops.taps], [first.tap]);
    });

    for (const [what, params] of [
      ['an upper-case name', { name: 'Web' }],
      ['a name with an underscore', { name: 'my_vm' }],
      ['a name starting with a dash', { name: '-vm' }],
      ['zero vcpus', { name: 'a', vcpus: 0 }],
      ['fractional memory', { name: 'a', memoryMib: 512.5 }],
      ['too little memory', { name: 'a', memoryMib: 64 }],
      ['a zero disk', { name: 'a', diskGib: 0 }],
    ] as const) {
      it(`refuses ${what} with INVALID_ARGUMENT before doing anything`, async () => {
        await assert.rejects(h.service.create(params, makeCtx().ctx), fails('INVALID_ARGUMENT'));
        assert.equal(h.runner.calls.length, 0);
        assertNothingLeft();
      });
    }

    it('passes an unknown image error through, creating nothing', async () => {
      await assert.rejects(h.service.create({ name: 'a', image: 'nope' }, makeCtx().ctx), fails('IMAGE_NOT_FOUND'));
      assertNothingLeft();
    });

    it('gives concurrent creates different addresses', async () => {
      const vms = await Promise.all(['a', 'b', 'c'].map((name) => h.service.create({ name }, makeCtx().ctx)));
      assert.deepEqual(vms.map((v) => v.ip).sort(), ['172.30.0.2', '172.30.0.3', '172.30.0.4']);
      assert.equal(new Set(vms.map((v) => v.tap)).size, 3);
    });

    it('uses the lowest free address, so addresses are reused after delete', async () => {
      const ctx = makeCtx().ctx;
      const a = await h.service.create({ name: 'a' }, ctx);
      const b = await h.service.create({ name: 'b' }, ctx);
      const c = await h.service.create({ name: 'c' }, ctx);
      assert.deepEqual([a.ip, b.ip, c.ip], ['172.30.0.2', '172.30.0.3', '172.30.0.4']);
      await h.service.delete('b');
      const d = await h.service.create({ name: 'd' }, ctx);
      assert.equal(d.ip, '172.30.0.3');
      const e = await h.service.create({ name: 'e' }, ctx);
      assert.equal(e.ip, '172.30.0.5');
    });

    it('takes addresses from the configured subnet', async () => {
      h.store.close();
      fs.rmSync(h.dir, { recursive: true, force: true });
      h = makeHarness((c) => {
        c.network.subnet = '10.44.3.0/24';
      });
      const vm = await h.service.create({ name: 'a' }, makeCtx().ctx);
      assert.equal(vm.ip, '10.44.3.2');
      assert.deepEqual(h.ops.callsTo('ensureBridge'), [{ bridge: 'banger0', gatewayCidr: '10.44.3.1/24', netns: null }]);
    });

    it('puts the tap, the VMM and the ssh check in the configured network namespace', async () => {
      h.store.close();
      fs.rmSync(h.dir, { recursive: true, force: true });
      h = makeHarness((c) => {
        c.network.netns = 'sandbox';
      });
      const vm = await h.service.create({ name: 'a' }, makeCtx().ctx);
      assert.deepEqual(h.ops.callsTo('createTap'), [{ tap: vm.tap, bridge: 'banger0', netns: 'sandbox' }]);
      assert.equal(h.driver.boots[0]!.netns, 'sandbox');
      const ssh = h.runner.callsTo('ip');
      assert.equal(ssh.length, 1);
      assert.deepEqual(ssh[0]!.args.slice(0, 4), ['netns', 'exec', 'sandbox', 'ssh']);
      assert.equal(h.runner.callsTo('ssh').length, 0);
    });
  });

  describe('create failures', () => {
    it('undoes everything when the VMM does not start', async () => {
      h.driver.bootError = new BangerError('VMM_FAILED', 'QEMU did not start: fake');
      await assert.rejects(h.service.create({ name: 'a' }, makeCtx().ctx), fails('VMM_FAILED', /fake/));
      assertNothingLeft();
      assert.ok(h.ops.callsTo('createTap').length === 1, 'a tap was made, then removed');
    });

    it('undoes everything when the tap cannot be made', async () => {
      h.ops.fail('createTap');
      await assert.rejects(h.service.create({ name: 'a' }, makeCtx().ctx), fails('NETWORK_FAILED'));
      assertNothingLeft();
      assert.equal(h.driver.boots.length, 0);
    });

    it('keeps a VM whose sshd never answers, running, for inspection', async () => {
      h.runner.on('ssh', () => ({ code: 255, stderr: 'ssh: connect to host 172.30.0.2 port 22: Connection refused' }));
      await assert.rejects(h.service.create({ name: 'slow', sshTimeoutSec: 1 }, makeCtx().ctx), (err: unknown) => {
        fails('SSH_TIMEOUT', /slow.*1s.*kept/)(err);
        assert.match((err as BangerError).hint!, /banger vm logs slow/);
        return true;
      });
      const [vm] = h.store.listVms();
      assert.ok(vm, 'the VM row is kept');
      assert.equal(vm.state, 'running');
      assert.ok(h.driver.isAlive(vm.id, vm.pid));
      assert.deepEqual([...h.ops.taps], [vm.tap]);
      assert.ok(fs.existsSync(h.service.files(vm.id).dir));
      assert.ok(h.runner.callsTo('ssh').length > 1, 'ssh was retried');
      assert.deepEqual(h.store.unfinishedVms(), [], 'kept on purpose: the next daemon does not remove it');
    });

    it('reports a VMM that dies while waiting for ssh as VMM_FAILED with the console tail, and undoes everything', async () => {
      let attempts = 0;
      h.runner.on('ssh', (call) => {
        if (++attempts === 2) h.driver.kill(vmIdOf(call));
        return { code: 255 };
      });
      await assert.rejects(h.service.create({ name: 'crashy' }, makeCtx().ctx), (err: unknown) => {
        fails('VMM_FAILED', /crashy stopped while booting/)(err);
        assert.match((err as BangerError).message, /last line/);
        assert.match((err as BangerError).hint!, /banger vm logs crashy/);
        return true;
      });
      assert.equal(attempts, 2);
      assertNothingLeft();
    });

    it('does not try ssh at all when the VMM is gone right after boot', async () => {
      h.driver.dieOnBoot = true;
      await assert.rejects(h.service.create({ name: 'a' }, makeCtx().ctx), fails('VMM_FAILED'));
      assert.equal(h.runner.callsTo('ssh').length, 0);
      assertNothingLeft();
    });

    it('stops and undoes everything when the caller cancels during the ssh wait', async () => {
      const { ctx, controller } = makeCtx();
      let attempts = 0;
      h.runner.on('ssh', () => {
        if (++attempts === 3) controller.abort();
        return { code: 255 };
      });
      await assert.rejects(h.service.create({ name: 'a' }, ctx), fails('CANCELLED'));
      assert.equal(attempts, 3);
      assertNothingLeft();
      assert.equal(h.driver.stops.length, 1, 'the running VMM was stopped');
    });

    it('undoes everything when cancelled before the disks are made', async () => {
      const { ctx, controller } = makeCtx();
      h.runner.on('ssh-keygen', () => {
        controller.abort();
        return { code: null, signal: 'SIGTERM' };
      });
      await assert.rejects(h.service.create({ name: 'a' }, ctx), fails('CANCELLED'));
      assertNothingLeft();
      assert.equal(h.driver.boots.length, 0);
    });

    it('leaves no abort listeners behind on the caller signal after polling ssh', {
    }, async () => {
      const { ctx } = makeCtx();
      let attempts = 0;
      h.runner.on('ssh', () => ({ code: ++attempts < 6 ? 255 : 0 }));
      await h.service.create({ name: 'a' }, ctx);
      assert.equal(attempts, 6);
      assert.equal(getEventListeners(ctx.signal, 'abort').length, 0);
    });
  });

  describe('resolve', () => {
    const row = (id: string, name: string, n: number): VmInfo => ({
      id, name, state: 'stopped', image: 'debian-bookworm', kernel: 'host-6.1.0-test', vcpus: 1, memoryMib: 512, diskGib: 1,
      ip: `172.30.0.${n}`, mac: '52:54:00:00:00:00', tap: `bgt${id}`, accel: null, pid: null, createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null,
    });

    it('finds a VM by name, id and unique id prefix', () => {
      h.store.insertVm(row('abc111111111', 'one', 2));
      h.store.insertVm(row('abc222222222', 'two', 3));
      assert.equal(h.service.show('one').id, 'abc111111111');
      assert.equal(h.service.show('abc222222222').name, 'two');
      assert.equal(h.service.show('abc1').name, 'one');
    });

    it('refuses an ambiguous id prefix with INVALID_ARGUMENT naming the matches', () => {
      h.store.insertVm(row('abc111111111', 'one', 2));
      h.store.insertVm(row('abc222222222', 'two', 3));
      assert.throws(() => h.service.show('abc'), (err: unknown) => {
        fails('INVALID_ARGUMENT', /matches 2 VMs \(one, two\)/)(err);
        assert.ok((err as BangerError).hint);
        return true;
      });
    });

    it('reports an unknown VM as VM_NOT_FOUND for every operation', async () => {
      assert.throws(() => h.service.show('ghost'), fails('VM_NOT_FOUND', /ghost/));
      assert.throws(() => h.service.sshTarget('ghost'), fails('VM_NOT_FOUND'));
      assert.throws(() => h.service.logs('ghost'), fails('VM_NOT_FOUND'));
      await assert.rejects(h.service.start('ghost', {}, makeCtx().ctx), fails('VM_NOT_FOUND'));
      await assert.rejects(h.service.stop('ghost'), fails('VM_NOT_FOUND'));
      await assert.rejects(h.service.delete('ghost'), fails('VM_NOT_FOUND'));
    });
  });

  describe('stop / start / delete', () => {
    it('waits for the guest agent at every boot, and keeps a VM whose agent never answers', async () => {
      await h.service.create({ name: 'web', sshTimeoutSec: 1 }, makeCtx().ctx);
      // A short --ssh-timeout is for sshd; the agent gets the configured boot wait.
      assert.deepEqual(h.agents.waits, [{ vm: 'web', timeoutSec: h.config.vmm.sshTimeoutSec }]);
      h.agents.failWith = new BangerError('AGENT_UNAVAILABLE', 'VM mute: the guest agent did not answer within 180s');
      await assert.rejects(h.service.create({ name: 'mute' }, makeCtx().ctx), fails('AGENT_UNAVAILABLE', /did not answer/));
      assert.equal(h.store.findVms('mute')[0]?.state, 'running', 'kept for inspection, as a VM whose sshd never answers');
    });

    it('stop syncs the guest through its agent, and not over ssh, while the VMM is up', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const sshBefore = h.runner.callsTo('ssh').filter((c) => c.args.at(-1) === 'sync').length;
      assert.equal((await h.service.stop('web')).state, 'stopped');
      assert.deepEqual(h.agents.syncs, ['web']);
      assert.equal(h.runner.callsTo('ssh').filter((c) => c.args.at(-1) === 'sync').length, sshBefore);
      assert.ok(h.agents.disconnects.includes(vm.id), 'the agent connection is let go');
    });

    it('stop syncs the guest over ssh when the agent cannot, stops the VMM and removes the tap', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.agents.syncWorks = false;
      let aliveAtSync: boolean | null = null;
      h.runner.on('ssh', (call) => {
        if (call.args.at(-1) === 'sync') aliveAtSync = h.driver.isAlive(vm.id, vm.pid);
        return { code: 0 };
      });
      const stopped = await h.service.stop('web');
      assert.equal(stopped.state, 'stopped');
      assert.equal(stopped.pid, null);
      assert.deepEqual(h.store.getVm(vm.id), stopped);
      assert.equal(aliveAtSync, true, 'sync ran while the VMM was still up');
      assert.deepEqual(h.driver.stops, [{ vmId: vm.id, pid: vm.pid }]);
      assert.equal(h.driver.isAlive(vm.id, vm.pid), false);
      assert.deepEqual([...h.ops.taps], []);
      // Disks and configuration stay for the next start.
      assert.ok(fs.existsSync(h.service.files(vm.id).rootDisk));
    });

    it('stop goes ahead when the guest sync fails', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.agents.syncWorks = false;
      h.runner.on('ssh', () => ({ code: 255, stderr: 'Connection refused' }));
      assert.equal((await h.service.stop(vm.id)).state, 'stopped');
      assert.ok(h.logs.some((l) => /sync failed/.test(l)));
      assert.equal(h.driver.aliveCount(), 0);
    });

    it('stop does not try to sync a VM whose VMM already died', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.driver.kill(vm.id);
      const before = h.runner.callsTo('ssh').length;
      assert.equal((await h.service.stop('web')).state, 'stopped');
      assert.equal(h.runner.callsTo('ssh').length, before);
      assert.deepEqual([...h.ops.taps], []);
    });

    it('stopping a stopped VM is harmless', async () => {
      await h.service.create({ name: 'web' }, makeCtx().ctx);
      await h.service.stop('web');
      assert.equal((await h.service.stop('web')).state, 'stopped');
      assert.equal(h.driver.stops.length, 1);
    });

    it('start boots a stopped VM again with a new VMM and tap', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      await h.service.stop('web');
      const { ctx, events } = makeCtx();
      const again = await h.service.start('web', { waitSsh: true }, ctx);
      assert.equal(again.state, 'running');
      assert.notEqual(again.pid, vm.pid);
      assert.ok(h.driver.isAlive(vm.id, again.pid));
      assert.deepEqual(h.store.getVm(vm.id), again);
      assert.deepEqual([...h.ops.taps], [vm.tap]);
      assert.equal(h.driver.boots.length, 2);
      assert.equal(again.ip, vm.ip);
      assert.deepEqual(events.map((e) => e.stage), ['spec', 'network', 'boot', 'ssh']);
    });

    it('start of a running VM only waits for ssh', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const same = await h.service.start('web', { waitSsh: true }, makeCtx().ctx);
      assert.equal(same.pid, vm.pid);
      assert.equal(h.driver.boots.length, 1);
    });

    it('start boots a VM whose VMM died, instead of reporting it running', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.driver.kill(vm.id);
      const again = await h.service.start('web', { waitSsh: true }, makeCtx().ctx);
      assert.equal(again.state, 'running');
      assert.equal(h.driver.boots.length, 2);
      assert.ok(h.driver.isAlive(vm.id, again.pid));
    });

    it('start of a VM whose VMM died keeps the new tap, however late the old one is removed', {
    }, async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.driver.kill(vm.id);
      const release = h.ops.hold('deleteTap');
      const started = h.service.start('web', { waitSsh: true }, makeCtx().ctx);
      await flush();
      release();
      const again = await started;
      await flush();
      assert.equal(again.state, 'running');
      assert.ok(h.ops.taps.has(vm.tap), 'the running VM still has its tap');
    });

    it('a tap removal started by list() does not remove the tap of a VM started right after', {
    }, async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.driver.kill(vm.id);
      const release = h.ops.hold('deleteTap');
      assert.equal(h.service.list()[0]!.state, 'stopped');
      const started = h.service.start('web', { waitSsh: true }, makeCtx().ctx);
      await flush();
      release();
      await started;
      await flush();
      assert.ok(h.ops.taps.has(vm.tap), 'the running VM still has its tap');
    });

    it('start cancelled during the ssh wait leaves the VM stopped with no tap', async () => {
      await h.service.create({ name: 'web' }, makeCtx().ctx);
      await h.service.stop('web');
      const { ctx, controller } = makeCtx();
      h.runner.on('ssh', () => {
        controller.abort();
        return { code: 255 };
      });
      await assert.rejects(h.service.start('web', { waitSsh: true }, ctx), fails('CANCELLED'));
      const vm = h.store.getVm(h.service.show('web').id)!;
      assert.equal(vm.state, 'stopped');
      assert.equal(vm.pid, null);
      assert.deepEqual([...h.ops.taps], []);
      assert.equal(h.driver.aliveCount(), 0);
    });

    it('start keeps the VM running when ssh times out', async () => {
      await h.service.create({ name: 'web' }, makeCtx().ctx);
      await h.service.stop('web');
      h.runner.on('ssh', () => ({ code: 255 }));
      await assert.rejects(h.service.start('web', { waitSsh: true, sshTimeoutSec: 1 }, makeCtx().ctx), fails('SSH_TIMEOUT'));
      assert.equal(h.service.show('web').state, 'running');
      assert.equal(h.ops.taps.size, 1);
    });

    it('delete stops a running VM and removes its row, files and tap', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const keep = await h.service.create({ name: 'keep' }, makeCtx().ctx);
      assert.deepEqual(await h.service.delete(vm.id.slice(0, 6)), { id: vm.id, name: 'web' });
      assert.equal(h.store.getVm(vm.id), null);
      assert.equal(fs.existsSync(h.service.files(vm.id).dir), false);
      assert.equal(h.ops.taps.has(vm.tap), false);
      assert.equal(h.driver.isAlive(vm.id, vm.pid), false);
      assert.deepEqual(h.driver.stops.map((s) => s.vmId), [vm.id]);
      // The other VM is untouched.
      assert.ok(h.driver.isAlive(keep.id, keep.pid));
      assert.ok(h.ops.taps.has(keep.tap));
      assert.throws(() => h.service.show('web'), fails('VM_NOT_FOUND'));
    });

    it('delete removes a stopped or never-started VM', async () => {
      await h.service.create({ name: 'a', start: false }, makeCtx().ctx);
      await h.service.create({ name: 'b' }, makeCtx().ctx);
      await h.service.stop('b');
      await h.service.delete('a');
      await h.service.delete('b');
      assertNothingLeft();
    });

    it('operations on one VM run one at a time', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const order: string[] = [];
      await Promise.all([
        h.service.stop('web').then(() => order.push('stop')),
        h.service.start('web', { waitSsh: false }, makeCtx().ctx).then((v) => order.push(`start:${v.state}`)),
        h.service.delete('web').then(() => order.push('delete')),
      ]);
      assert.deepEqual(order, ['stop', 'start:running', 'delete']);
      assert.equal(h.store.getVm(vm.id), null);
      assertNothingLeft();
    });
  });

  describe('sshTarget and logs', () => {
    it('gives the ssh target of a running VM and refuses a stopped one', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      assert.deepEqual(h.service.sshTarget('web'), {
        vmId: vm.id, name: 'web', ip: vm.ip, user: 'root', keyPath: path.join(h.dir, 'ssh', 'id_ed25519'),
        knownHostsPath: path.join(h.vmsDir, vm.id, 'known_hosts'), hostKeyAlias: `banger-${vm.id}`, netns: null,
        controlPath: path.join(h.vmsDir, vm.id, 'ssh.ctl'), workdir: '/root',
      });
      await h.service.stop('web');
      assert.throws(() => h.service.sshTarget('web'), fails('VM_BAD_STATE', /stopped/));
    });

    it('returns the serial console from an offset', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const all = h.service.logs('web');
      assert.equal(all.data, `fake console of ${vm.id}\nlast line\n`);
      assert.equal(all.offset, Buffer.byteLength(all.data));
      fs.appendFileSync(h.service.files(vm.id).serialLog, 'more\n');
      assert.deepEqual(h.service.logs('web', all.offset), { data: 'more\n', offset: all.offset + 5 });
      // An offset past the end (the log was truncated) starts over.
      assert.equal(h.service.logs('web', 10_000).data.startsWith('fake console'), true);
    });

    it('returns nothing for a VM without a console yet', async () => {
      await h.service.create({ name: 'web', start: false }, makeCtx().ctx);
      assert.deepEqual(h.service.logs('web'), { data: '', offset: 0 });
    });
  });

  describe('dead VMMs', () => {
    it('reconcile marks a running VM whose VMM died stopped and removes its tap; live ones are kept', async () => {
      const dead = await h.service.create({ name: 'dead' }, makeCtx().ctx);
      const live = await h.service.create({ name: 'live' }, makeCtx().ctx);
      const idle = await h.service.create({ name: 'idle' }, makeCtx().ctx);
      await h.service.stop('idle');
      h.driver.kill(dead.id);
      const deletesBefore = h.ops.callsTo('deleteTap').length;
      await h.service.reconcile();
      assert.equal(h.store.getVm(dead.id)!.state, 'stopped');
      assert.equal(h.store.getVm(dead.id)!.pid, null);
      assert.equal(h.ops.taps.has(dead.tap), false);
      assert.deepEqual(h.store.getVm(live.id), live);
      assert.ok(h.ops.taps.has(live.tap));
      assert.equal(h.store.getVm(idle.id)!.state, 'stopped');
      assert.deepEqual(h.ops.callsTo('deleteTap').slice(deletesBefore), [{ tap: dead.tap, netns: null }]);
    });

    it('reconcile removes whole a VM whose create a killed daemon never finished, and keeps finished ones', async () => {
      const cut = await h.service.create({ name: 'cut' }, makeCtx().ctx);
      const whole = await h.service.create({ name: 'whole' }, makeCtx().ctx);
      const made = await h.service.create({ name: 'made', start: false }, makeCtx().ctx);
      assert.deepEqual(h.store.unfinishedVms(), []);
      // What a daemon killed after the boot, before its create returned, leaves: the row still marked unfinished.
      h.store.db.prepare('UPDATE vms SET unfinished = 1 WHERE id = ?').run(cut.id);
      assert.ok(h.driver.isAlive(cut.id, cut.pid) && h.ops.taps.has(cut.tap) && fs.existsSync(h.service.files(cut.id).dir));
      await h.service.reconcile();
      assert.equal(h.store.getVm(cut.id), null);
      assert.equal(h.driver.isAlive(cut.id, cut.pid), false);
      assert.equal(h.ops.taps.has(cut.tap), false);
      assert.equal(fs.existsSync(h.service.files(cut.id).dir), false);
      assert.ok(h.logs.some((l) => /vm cut: its create did not finish/.test(l)));
      assert.deepEqual(h.store.getVm(whole.id), whole);
      assert.equal(h.store.getVm(made.id)!.state, 'created');
    });

    it('reconcile keeps an unfinished VM it cannot remove, stopped and no longer unfinished, and says so', async () => {
      const cut = await h.service.create({ name: 'cut' }, makeCtx().ctx);
      h.store.db.prepare('UPDATE vms SET unfinished = 1 WHERE id = ?').run(cut.id);
      h.ops.fail('deleteTap');
      await h.service.reconcile();
      assert.equal(h.store.getVm(cut.id)!.state, 'stopped');
      assert.deepEqual(h.store.unfinishedVms(), []);
      assert.ok(h.logs.some((l) => /could not remove it: .*banger vm delete cut/.test(l)));
    });

    it('reconcile carries on when a tap cannot be deleted', async () => {
      const a = await h.service.create({ name: 'a' }, makeCtx().ctx);
      const b = await h.service.create({ name: 'b' }, makeCtx().ctx);
      h.driver.kill(a.id);
      h.driver.kill(b.id);
      h.ops.fail('deleteTap');
      await h.service.reconcile();
      assert.equal(h.store.getVm(a.id)!.state, 'stopped');
      assert.equal(h.store.getVm(b.id)!.state, 'stopped');
      assert.ok(h.logs.some((l) => /could not delete tap/.test(l)));
    });

    it('list and show report a VM whose VMM died as stopped and remove its tap', async () => {
      const a = await h.service.create({ name: 'a' }, makeCtx().ctx);
      const b = await h.service.create({ name: 'b' }, makeCtx().ctx);
      h.driver.kill(a.id);
      const listed = h.service.list();
      assert.deepEqual(listed.map((v) => [v.name, v.state]), [['a', 'stopped'], ['b', 'running']]);
      assert.equal(h.store.getVm(a.id)!.state, 'stopped');
      await flush();
      assert.equal(h.ops.taps.has(a.tap), false);
      assert.ok(h.ops.taps.has(b.tap));

      h.driver.kill(b.id);
      assert.equal(h.service.show('b').state, 'stopped');
      await flush();
      assert.equal(h.ops.taps.size, 0);
    });
  });

  describe('a tap that cannot be removed', () => {
    const helperDown = (): BangerError => new BangerError('HELPER_UNAVAILABLE', 'the privileged helper bangerd-root is not running', { hint: 'start it: sudo bangerd-root' });

    it('delete stops the VMM but keeps the VM, stopped, when bangerd-root is down, and says how to finish', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.ops.fail('deleteTap', helperDown());
      await assert.rejects(h.service.delete('web'), (err: unknown) => {
        fails('HELPER_UNAVAILABLE', new RegExp(`tap ${vm.tap} of VM web .*bangerd-root is not running.*kept`))(err);
        assert.match((err as BangerError).hint!, /start bangerd-root, then rerun: banger vm delete web/);
        assert.match((err as BangerError).hint!, /sudo bangerd-root/);
        return true;
      });
      const kept = h.store.getVm(vm.id);
      assert.ok(kept, 'the row is kept, so the tap is not forgotten');
      assert.deepEqual([kept.state, kept.pid], ['stopped', null]);
      assert.equal(h.driver.aliveCount(), 0);
      assert.ok(fs.existsSync(h.service.files(vm.id).dir));

      h.ops.succeed('deleteTap');
      await h.service.delete('web');
      assertNothingLeft();
    });

    it('delete keeps the code of any other tap failure and says to rerun', async () => {
      await h.service.create({ name: 'web' }, makeCtx().ctx);
      h.ops.fail('deleteTap');
      await assert.rejects(h.service.delete('web'), (err: unknown) => {
        fails('NETWORK_FAILED', /fake deleteTap failed/)(err);
        assert.match((err as BangerError).hint!, /rerun: banger vm delete web$/);
        return true;
      });
      assert.equal(h.service.show('web').state, 'stopped');
    });

    it('a failed create whose tap cannot be removed keeps the VM and reports both failures', async () => {
      h.driver.bootError = new BangerError('VMM_FAILED', 'QEMU did not start: fake');
      h.ops.fail('deleteTap', helperDown());
      await assert.rejects(h.service.create({ name: 'a' }, makeCtx().ctx), (err: unknown) => {
        fails('VMM_FAILED', /QEMU did not start: fake\nundoing the create failed: tap bgt[0-9a-f]+ of VM a could not be removed/)(err);
        assert.match((err as BangerError).hint!, /banger vm delete a/);
        return true;
      });
      const [kept] = h.store.listVms();
      assert.ok(kept, 'the row is kept');
      assert.equal(kept.state, 'stopped');
      assert.ok(h.ops.taps.has(kept.tap));

      h.ops.succeed('deleteTap');
      await h.service.delete('a');
      assertNothingLeft();
    });
  });

  describe('a VMM whose pid was never recorded', () => {
    const launchFailedLate = (): void => {
      h.driver.bootError = new BangerError('CANCELLED', 'launch cancelled');
      h.driver.bootErrorLeavesVmm = true;
    };

    it('is stopped when the create it belonged to is undone', async () => {
      launchFailedLate();
      await assert.rejects(h.service.create({ name: 'a' }, makeCtx().ctx), fails('CANCELLED'));
      assertNothingLeft();
      assert.equal(h.driver.stops.length, 1);
      assert.notEqual(h.driver.stops[0]!.pid, null);
    });

    it('is stopped when the start it belonged to fails, and its tap removed', async () => {
      const vm = await h.service.create({ name: 'a', start: false }, makeCtx().ctx);
      launchFailedLate();
      await assert.rejects(h.service.start('a', { waitSsh: true }, makeCtx().ctx), fails('CANCELLED'));
      assert.equal(h.driver.aliveCount(), 0);
      assert.equal(h.store.getVm(vm.id)!.state, 'stopped');
      assert.deepEqual([...h.ops.taps], []);
    });

    for (const state of ['created', 'stopped'] as const) {
      it(`is stopped by stop and by delete of a ${state} VM`, async () => {
        const vm = await h.service.create({ name: 'a', start: state !== 'created' }, makeCtx().ctx);
        if (state === 'stopped') await h.service.stop('a');
        const pid = h.driver.startUnrecorded(vm.id, h.service.files(vm.id));
        const stopped = await h.service.stop('a');
        assert.equal(stopped.state, 'stopped');
        assert.equal(h.driver.isAlive(vm.id, pid), false);
        assert.deepEqual(h.driver.stops.at(-1), { vmId: vm.id, pid });

        h.driver.startUnrecorded(vm.id, h.service.files(vm.id));
        await h.service.delete('a');
        assertNothingLeft();
      });
    }

    it('is stopped by reconcile, for created and stopped VMs, and their taps removed', async () => {
      const created = await h.service.create({ name: 'created', start: false }, makeCtx().ctx);
      const stopped = await h.service.create({ name: 'stopped' }, makeCtx().ctx);
      await h.service.stop('stopped');
      const live = await h.service.create({ name: 'live' }, makeCtx().ctx);
      h.driver.startUnrecorded(created.id, h.service.files(created.id));
      h.driver.startUnrecorded(stopped.id, h.service.files(stopped.id));
      const deletesBefore = h.ops.callsTo('deleteTap').length;
      await h.service.reconcile();
      assert.equal(h.driver.aliveCount(), 1);
      assert.ok(h.driver.isAlive(live.id, live.pid));
      assert.equal(h.store.getVm(created.id)!.state, 'stopped');
      assert.equal(h.store.getVm(stopped.id)!.state, 'stopped');
      assert.deepEqual(h.ops.callsTo('deleteTap').slice(deletesBefore), [{ tap: created.tap, netns: null }, { tap: stopped.tap, netns: null }]);
    });

    it('is not taken from a pid file naming another VM\'s VMM, or from a symlink', async () => {
      const other = await h.service.create({ name: 'other' }, makeCtx().ctx);
      const a = await h.service.create({ name: 'a', start: false }, makeCtx().ctx);
      fs.writeFileSync(h.service.files(a.id).pidFile, `${other.pid}\n`);
      await h.service.reconcile();
      await h.service.delete('a');
      assert.ok(h.driver.isAlive(other.id, other.pid), 'the other VM still runs');

      const b = await h.service.create({ name: 'b', start: false }, makeCtx().ctx);
      const files = h.service.files(b.id);
      const pid = h.driver.startUnrecorded(b.id, files);
      fs.renameSync(files.pidFile, path.join(h.dir, 'elsewhere.pid'));
      fs.symlinkSync(path.join(h.dir, 'elsewhere.pid'), files.pidFile);
      await h.service.reconcile();
      assert.ok(h.driver.isAlive(b.id, pid), 'a symlinked pid file is not followed');
      assert.equal(h.store.getVm(b.id)!.state, 'created');
    });
  });

  describe('the shared ssh connection', () => {
    /** Pretends an ssh master from an earlier boot left its control socket. */
    const leaveMaster = (vm: VmInfo): string => {
      const controlPath = path.join(h.service.files(vm.id).dir, 'ssh.ctl');
      fs.writeFileSync(controlPath, '');
      return controlPath;
    };
    const closeCalls = (): FakeCall[] => h.runner.callsTo('ssh').filter((c) => c.args.includes('-O'));

    it('is closed before a VM whose VMM died boots again', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const controlPath = leaveMaster(vm);
      h.driver.kill(vm.id);
      let bootsAtClose: number | null = null;
      h.runner.on('ssh', (call) => {
        if (call.args.includes('-O')) bootsAtClose = h.driver.boots.length;
        return { code: 0 };
      });
      await h.service.start('web', { waitSsh: true }, makeCtx().ctx);
      assert.equal(bootsAtClose, 1, 'closed before the second boot');
      assert.deepEqual(closeCalls()[0]!.args.slice(-3), ['-O', 'exit', `root@${vm.ip}`]);
      assert.ok(closeCalls()[0]!.args.includes(`ControlPath=${controlPath}`));
    });

    it('is closed when list finds the VM dead', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const controlPath = leaveMaster(vm);
      h.driver.kill(vm.id);
      assert.equal(h.service.list()[0]!.state, 'stopped');
      await flush();
      assert.equal(closeCalls().length, 1);
      assert.equal(fs.existsSync(controlPath), false);
    });

    it('is closed when reconcile finds the VM dead', async () => {
      const vm = await h.service.create({ name: 'web' }, makeCtx().ctx);
      const controlPath = leaveMaster(vm);
      h.driver.kill(vm.id);
      await h.service.reconcile();
      assert.equal(closeCalls().length, 1);
      assert.equal(fs.existsSync(controlPath), false);
    });
  });

  describe('ssh timeout', () => {
    for (const value of [0, -1, 1.5, 3601, '10', null]) {
      it(`create and start refuse ${JSON.stringify(value)} seconds with INVALID_ARGUMENT before doing anything`, async () => {
        const bad = { sshTimeoutSec: value } as unknown as { sshTimeoutSec: number };
        await assert.rejects(h.service.create({ name: 'a', ...bad }, makeCtx().ctx), fails('INVALID_ARGUMENT', /ssh timeout/));
        assert.equal(h.runner.calls.length, 0);
        assertNothingLeft();
        await h.service.create({ name: 'b', start: false }, makeCtx().ctx);
        await assert.rejects(h.service.start('b', { waitSsh: true, ...bad }, makeCtx().ctx), fails('INVALID_ARGUMENT', /ssh timeout/));
        assert.equal(h.driver.boots.length, 0);
      });
    }

    it('accepts 1 to 3600 seconds', async () => {
      await h.service.create({ name: 'a', sshTimeoutSec: 3600 }, makeCtx().ctx);
      await h.service.create({ name: 'b', start: false }, makeCtx().ctx);
      assert.equal((await h.service.start('b', { waitSsh: true, sshTimeoutSec: 1 }, makeCtx().ctx)).state, 'running');
    });
  });
  describe('NAT', () => {
    const natOf = (ip: string) => ({ ip, bridge: 'banger0', netns: null });

    it('a VM created with nat gets NAT for its address before it boots, and keeps the setting', async () => {
      const release = h.ops.hold('natEnable');
      const creating = h.service.create({ name: 'out', nat: true }, makeCtx().ctx);
      await flush();
      assert.deepEqual(h.ops.callsTo('natEnable'), [natOf('172.30.0.2')]);
      assert.equal(h.driver.boots.length, 0, 'NAT is in place before the guest runs');
      release();
      const vm = await creating;
      assert.equal(vm.nat, true);
      assert.equal(h.store.getVm(vm.id)!.nat, true);
      assert.deepEqual([...h.ops.natIps], ['172.30.0.2']);
      assert.deepEqual(h.ops.callsTo('natDisable'), []);
    });

    it('the spec line says NAT when the VM has it', async () => {
      const withNat = makeCtx();
      await h.service.create({ name: 'out', nat: true }, withNat.ctx);
      assert.match(withNat.events.find((e) => e.stage === 'spec')!.message, /image debian-bookworm, NAT, fake\//);
      const without = makeCtx();
      await h.service.create({ name: 'plain' }, without.ctx);
      assert.doesNotMatch(without.events.find((e) => e.stage === 'spec')!.message, /NAT/);
    });

    it('a VM without nat never gets NAT, and its address loses any NAT left from before', async () => {
      h.ops.natIps.add('172.30.0.2');
      const vm = await h.service.create({ name: 'plain' }, makeCtx().ctx);
      assert.equal(vm.nat, false);
      assert.deepEqual(h.ops.callsTo('natEnable'), []);
      assert.deepEqual(h.ops.callsTo('natDisable'), [natOf('172.30.0.2')]);
      assert.deepEqual([...h.ops.natIps], []);
    });

    it('stop removes NAT and start puts it back; delete leaves none', async () => {
      const vm = await h.service.create({ name: 'out', nat: true }, makeCtx().ctx);
      await h.service.stop('out');
      assert.deepEqual([...h.ops.natIps], []);
      await h.service.start('out', {}, makeCtx().ctx);
      assert.deepEqual([...h.ops.natIps], [vm.ip]);
      assert.equal(h.ops.callsTo('natEnable').length, 2);
      await h.service.delete('out');
      assert.deepEqual([...h.ops.natIps], []);
      assertNothingLeft();
    });

    it('delete of a running VM removes its NAT', async () => {
      await h.service.create({ name: 'out', nat: true }, makeCtx().ctx);
      await h.service.delete('out');
      assert.deepEqual([...h.ops.natIps], []);
      assertNothingLeft();
    });

    it('one VM\'s NAT stays when another VM stops', async () => {
      const a = await h.service.create({ name: 'a', nat: true }, makeCtx().ctx);
      const b = await h.service.create({ name: 'b', nat: true }, makeCtx().ctx);
      await h.service.stop('b');
      assert.deepEqual([...h.ops.natIps], [a.ip]);
      assert.notEqual(a.ip, b.ip);
    });

    it('a boot that fails removes the NAT it added, with the tap', async () => {
      h.driver.bootError = new BangerError('VMM_FAILED', 'QEMU did not start: fake');
      await assert.rejects(h.service.create({ name: 'out', nat: true }, makeCtx().ctx), fails('VMM_FAILED'));
      assert.deepEqual(h.ops.callsTo('natEnable'), [natOf('172.30.0.2')]);
      assert.deepEqual([...h.ops.natIps], []);
      assertNothingLeft();
    });

    it('a failed start of a stopped VM leaves no NAT behind', async () => {
      await h.service.create({ name: 'out', nat: true, start: false }, makeCtx().ctx);
      h.driver.bootError = new BangerError('VMM_FAILED', 'QEMU did not start: fake');
      await assert.rejects(h.service.start('out', {}, makeCtx().ctx), fails('VMM_FAILED'));
      assert.equal(h.ops.callsTo('natEnable').length, 1);
      assert.deepEqual([...h.ops.natIps], []);
      assert.deepEqual([...h.ops.taps], []);
    });

    it('NAT that cannot be added fails the create and leaves nothing', async () => {
      h.ops.fail('natEnable', new BangerError('TOOL_FAILED', 'nft -f - failed (exit status 1): fake'));
      await assert.rejects(h.service.create({ name: 'out', nat: true }, makeCtx().ctx), fails('TOOL_FAILED', /nft/));
      assert.equal(h.driver.boots.length, 0);
      assertNothingLeft();
    });

    it('delete keeps the VM, stopped, when its NAT cannot be removed, and says so', async () => {
      const vm = await h.service.create({ name: 'out', nat: true }, makeCtx().ctx);
      h.ops.fail('natDisable', new BangerError('TOOL_FAILED', 'nft -f - failed (exit status 1): fake'));
      await assert.rejects(h.service.delete('out'), fails('TOOL_FAILED', /NAT rules of VM out \(172\.30\.0\.2\) could not be removed/, { hint: true }));
      assert.equal(h.store.getVm(vm.id)!.state, 'stopped');
      h.ops.succeed('natDisable');
      await h.service.delete('out');
      assertNothingLeft();
    });

    it('a VM whose VMM died loses its NAT when it is noticed', async () => {
      const vm = await h.service.create({ name: 'out', nat: true }, makeCtx().ctx);
      h.driver.kill(vm.id);
      assert.equal(h.service.show('out').state, 'stopped');
      await flush();
      assert.deepEqual([...h.ops.natIps], []);
    });

    it('reconcile removes NAT of addresses without a running VM with nat, and restores a running one\'s', async () => {
      const live = await h.service.create({ name: 'live', nat: true }, makeCtx().ctx);
      const dead = await h.service.create({ name: 'dead', nat: true }, makeCtx().ctx);
      const plain = await h.service.create({ name: 'plain' }, makeCtx().ctx);
      const idle = await h.service.create({ name: 'idle', nat: true }, makeCtx().ctx);
      await h.service.stop('idle');
      h.driver.kill(dead.id);
      // What a daemon killed at the wrong moment leaves: NAT for a deleted VM's address, a non-NAT VM's, a
      // stopped VM's, and a running VM's NAT gone.
      h.ops.natIps.clear();
      for (const ip of ['172.30.0.99', plain.ip, idle.ip, dead.ip]) h.ops.natIps.add(ip);
      await h.service.reconcile();
      assert.deepEqual([...h.ops.natIps], [live.ip]);
      assert.equal(h.store.getVm(dead.id)!.state, 'stopped');
      assert.ok(h.logs.some((l) => /NAT for 172\.30\.0\.99: no running VM with nat/.test(l)), h.logs.join('\n'));
      assert.ok(h.logs.some((l) => /vm live: its NAT rules are missing/.test(l)));
    });

    it('reconcile carries on, and says so, when NAT cannot be listed', async () => {
      await h.service.create({ name: 'out', nat: true }, makeCtx().ctx);
      h.ops.fail('natList', new BangerError('HELPER_UNAVAILABLE', 'fake: bangerd-root is not running'));
      await h.service.reconcile();
      assert.ok(h.logs.some((l) => /NAT rules: fake: bangerd-root is not running/.test(l)));
    });
  });
  describe('an image that names its kernel', () => {
    it('boots that kernel, and records it on the VM', async () => {
      const custom = { ...h.kernel, id: 'fc-6.1', version: '6.1.0-fc', format: 'elf' as const };
      h.store.upsertKernel(custom);
      Object.assign(h.image, { kernelRef: 'fc-6.1' });
      const vm = await h.service.create({ name: 'fc' }, makeCtx().ctx);
      assert.equal(vm.kernel, 'fc-6.1');
      assert.equal(h.driver.boots[0]!.kernel.id, 'fc-6.1');
    });

    it('fails the create, leaving nothing, when the kernel cannot be had', async () => {
      Object.assign(h.image, { kernelRef: 'missing' });
      await assert.rejects(h.service.create({ name: 'nokernel' }, makeCtx().ctx), fails('KERNEL_NOT_FOUND'));
      assertNothingLeft();
    });
  });

  describe('an image without systemd or sshd', () => {
    beforeEach(() => {
      Object.assign(h.image, { boot: 'agent', hasSshd: false });
      h.store.upsertImage(h.image);
    });

    it("boots with banger's agent as init and waits for the agent alone", async () => {
      const vm = await h.service.create({ name: 'tiny' }, makeCtx().ctx);
      assert.equal(vm.state, 'running');
      assert.equal(h.runner.callsTo('ssh').length, 0, 'no ssh wait');
      const initrd = fs.readFileSync(path.join(h.vmsDir, vm.id, 'initrd.img'));
      const env = new Map(readCpio(initrd.subarray(BASE_INITRD.length)).map((e) => [e.path, e.data?.toString() ?? ''])).get('banger/vm.env')!;
      assert.match(env, /^BANGER_BOOT='agent'$/m);
    });

    it('says that [[file_sync]] is skipped, and why', async () => {
      fs.writeFileSync(path.join(h.home, '.gitconfig'), '[user]\n');
      h.config.fileSync.push({ host: '~/.gitconfig', guest: '/root/.gitconfig', mode: null });
      const { ctx, events } = makeCtx();
      await h.service.create({ name: 'tiny' }, ctx);
      assert.ok(events.some((e) => e.stage === 'files' && /\[\[file_sync\]\] skipped: image debian-bookworm has no sshd/.test(e.message)), JSON.stringify(events));
    });

    it('refuses ssh, naming what works instead', async () => {
      await h.service.create({ name: 'tiny' }, makeCtx().ctx);
      assert.throws(() => h.service.sshTarget('tiny'), fails('VM_BAD_STATE', /has no sshd/));
    });
  });
});
