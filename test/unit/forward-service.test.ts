// ForwardService's bookkeeping: refusals, restore after a daemon restart, and what a stopped VM leaves.
import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ForwardService } from '../../src/daemon/services/forward-service.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import { Store } from '../../src/store/store.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { fails } from '../fakes/expect-error.ts';
import { freePort } from '../fakes/free-port.ts';

const vmRow = (o: Partial<VmInfo>): VmInfo => ({
  id: 'aaaaaaaaaaaa', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'k', vcpus: 1, memoryMib: 512, diskGib: 8,
  ip: '172.30.0.2', mac: '52:54:00:aa:aa:aa', tap: 'bgtaaaaaaaaaaaa', accel: 'tcg', pid: 1, createdAt: '2026-11-23T00:00:00.000Z', nat: false, workspace: null, ...o,
});


describe('ForwardService', () => {
  let store: Store;
  let forwards: ForwardService;
  let logs: string[];
  beforeEach(() => {
    store = new Store(':memory:');
    store.insertVm(vmRow({}));
    store.insertVm(vmRow({ id: 'bbbbbbbbbbbb', name: 'old', state: 'stopped', ip: '172.30.0.3', tap: 'bgtbbbbbbbbbbbb' }));
    logs = [];
    // The agent is never reached here: connections are not what these tests are about.
    const agents = { require: async () => { throw new BangerError('AGENT_UNAVAILABLE', 'no agent in this test'); } };
    forwards = new ForwardService({ store, clock: new FakeClock(), agents, vm: (id) => store.getVm(id), log: (m) => logs.push(m) });
  });
  afterEach(() => {
    forwards.closeAll();
    store.close();
  });

  it('refuses a stopped VM, and a host port that is already forwarded, naming its VM', async () => {
    await assert.rejects(forwards.add(store.getVm('bbbbbbbbbbbb')!, 80), fails('VM_BAD_STATE', /old is stopped/));
    const f = await forwards.add(store.getVm('aaaaaaaaaaaa')!, 80);
    await assert.rejects(forwards.add(store.getVm('aaaaaaaaaaaa')!, 81, f.hostPort), fails('INVALID_ARGUMENT', new RegExp(`host port ${f.hostPort} is already forwarded \\(to port 80 of web\\)`)));
  });

  it('refuses a host port another program holds', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    try {
      const port = (holder.address() as net.AddressInfo).port;
      await assert.rejects(forwards.add(store.getVm('aaaaaaaaaaaa')!, 80, port), fails('INVALID_ARGUMENT', /is in use/));
      assert.deepEqual(store.listForwards(), []);
    } finally {
      holder.close();
    }
  });

  it('after a restart, listens again for running VMs and forgets the forwards of stopped ones', async () => {
    const running = await freePort();
    const stale = await freePort();
    store.insertForward({ hostPort: running, vmId: 'aaaaaaaaaaaa', guestPort: 80, createdAt: 't' });
    store.insertForward({ hostPort: stale, vmId: 'bbbbbbbbbbbb', guestPort: 80, createdAt: 't' });
    await forwards.restore();
    assert.deepEqual(store.listForwards().map((f) => f.hostPort), [running]);
    // Listening again: a connection is accepted and then, with no agent here, reset; not refused.
    const outcome = await new Promise<string>((resolve) => {
      const s = net.connect(running, '127.0.0.1');
      s.once('connect', () => resolve('connected'));
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    assert.ok(outcome === 'connected' || outcome === 'ECONNRESET', outcome);
  });

  it('removes one forward, refuses one the VM does not have, and drops them all when the VM stops', async () => {
    const a = await forwards.add(store.getVm('aaaaaaaaaaaa')!, 80);
    const b = await forwards.add(store.getVm('aaaaaaaaaaaa')!, 81);
    assert.throws(() => forwards.remove(store.getVm('aaaaaaaaaaaa')!, 1), fails('INVALID_ARGUMENT', /has no forward from host port 1/, { hint: true }));
    assert.equal(forwards.remove(store.getVm('aaaaaaaaaaaa')!, a.hostPort).guestPort, 80);
    forwards.dropAll('aaaaaaaaaaaa');
    assert.deepEqual(store.listForwards(), []);
    await assert.rejects(new Promise((resolve, reject) => {
      const s = net.connect(b.hostPort, '127.0.0.1');
      s.once('connect', resolve);
      s.once('error', reject);
    }), /ECONNREFUSED/);
  });
});
