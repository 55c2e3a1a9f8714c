// AgentService's waits and failures, with a fake dial and an in-memory agent (no real time passes).
import assert from 'node:assert/strict';
import { Duplex, PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { AgentService } from '../../src/daemon/services/agent-service.ts';
import { encodeFrame, FrameReader } from '../../src/protocol/agent-frames.ts';
import type { BangerError } from '../../src/protocol/errors.ts';
import type { CallContext, ProgressEvent } from '../../src/protocol/jsonrpc.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import { Store } from '../../src/store/store.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { fails } from '../fakes/expect-error.ts';

const VM: VmInfo = {
  id: 'aaaaaaaaaaaa', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'k', vcpus: 1, memoryMib: 512, diskGib: 8,
  ip: '172.30.0.2', mac: '52:54:00:aa:aa:aa', tap: 'bgtaaaaaaaaaaaa', accel: 'tcg', pid: 1, createdAt: '2026-11-23T00:00:00.000Z', nat: false, workspace: null,
};

/** An agent that answers hello (as version `agentVersion`), and `health` unless told to hang. */
function memoryAgent(o: { agentVersion?: string; hangOn?: string } = {}): Duplex {
  const toHost = new PassThrough();
  const fromHost = new PassThrough();
  const reader = new FrameReader();
  fromHost.on('data', (chunk: Buffer) => {
    for (const { header: h } of reader.push(chunk)) {
      if (h.t === o.hangOn) continue;
      if (h.t === 'hello') toHost.write(encodeFrame({ t: 'ok', id: h.id, r: { version: 1, agentVersion: o.agentVersion ?? '0.1.0', nonce: h.nonce, bootId: 'b', pid: 1 } }));
      else if (h.t === 'health') toHost.write(encodeFrame({ t: 'ok', id: h.id, r: { systemState: 'running', uptimeSec: 3 } }));
    }
  });
  return Duplex.from({ readable: toHost, writable: fromHost });
}

function ctx(): { ctx: CallContext; events: ProgressEvent[] } {
  const events: ProgressEvent[] = [];
  return { ctx: { signal: new AbortController().signal, progress: (e) => events.push(e) }, events };
}

describe('AgentService', () => {
  let store: Store;
  let clock: FakeClock;
  let logs: string[];
  let dials: number;
  beforeEach(() => {
    store = new Store(':memory:');
    store.insertVm(VM);
    clock = new FakeClock();
    logs = [];
    dials = 0;
  });
  afterEach(() => store.close());

  const service = (dial: () => Promise<Duplex>): AgentService =>
    new AgentService({ store, clock, log: (m) => logs.push(m), endpoint: () => ({ kind: 'virtio-serial', path: '/vms/a/agent.sock' }), dial: () => {
      dials++;
      return dial();
    } });

  it('dials until the VMM serves the port, then waits for the hello, and records the version', async () => {
    const agents = service(async () => {
      if (dials < 3) throw new Error('ENOENT');
      return memoryAgent({ agentVersion: '0.0.9' });
    });
    const c = ctx();
    await agents.waitReady(VM, 30, c.ctx, { vmmAlive: () => true, consoleTail: () => '' });
    assert.equal(dials, 3);
    assert.deepEqual(c.events.map((e) => e.stage), ['agent']);
    assert.equal(store.getVm(VM.id)!.agentVersion, '0.0.9');
    assert.ok(logs.some((l) => /agent is 0\.0\.9, this banger ships/.test(l)), logs.join('\n'));
    agents.close();
  });

  it('fails at once with the console when the VMM dies while booting', async () => {
    const agents = service(async () => {
      throw new Error('ENOENT');
    });
    await assert.rejects(agents.waitReady(VM, 30, ctx().ctx, { vmmAlive: () => false, consoleTail: () => 'Kernel panic' }), fails('VMM_FAILED', /Kernel panic/));
  });

  it('gives up after the timeout on the clock it was given, keeping the VM for inspection', async () => {
    const agents = service(async () => {
      throw new Error('ENOENT');
    });
    await assert.rejects(agents.waitReady(VM, 5, ctx().ctx, { vmmAlive: () => true, consoleTail: () => '' }), fails('AGENT_UNAVAILABLE', /within 5s.*kept for inspection/, { hint: true }));
    assert.ok(dials > 1);
  });

  it('answers a hung request with AGENT_UNAVAILABLE naming the VM, and connects afresh for the next one', async () => {
    let hang = true;
    const agents = service(async () => memoryAgent(hang ? { hangOn: 'health' } : {}));
    await assert.rejects(agents.request(VM, 'health', {}, { timeoutMs: 2000 }), (err: unknown) => {
      fails('AGENT_UNAVAILABLE', /VM web: the guest agent is not answering/)(err);
      assert.match((err as BangerError).hint ?? '', /banger vm logs web/);
      return true;
    });
    hang = false;
    assert.deepEqual(await agents.request(VM, 'health', {}), { systemState: 'running', uptimeSec: 3 });
    assert.equal(dials, 2);
    agents.close();
  });

  it('reports a sync the agent cannot do as false, so the caller can sync another way', async () => {
    const agents = service(async () => memoryAgent({ hangOn: 'sync' }));
    assert.equal(await agents.sync(VM), false);
    assert.ok(logs.some((l) => /guest sync through the agent failed/.test(l)));
    agents.close();
  });
});
