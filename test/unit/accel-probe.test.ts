import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KernelInfo } from '../../src/protocol/methods.ts';
import { PROBE_MARKER } from '../../src/system/guest-contract.ts';
import type { RunResult } from '../../src/system/process.ts';
import { AccelProbe, PROBE_LIMIT_MS, PROBE_STALL_MS, type AccelProbeOptions } from '../../src/vmm/qemu/accel-probe.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { FakeProcessRunner, type FakeCall } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';

const kernel: KernelInfo = { id: 'host-1', version: '1', kernelPath: '/k', initrdPath: '/i', source: 'test', createdAt: '', format: 'bzimage' };
const signal = new AbortController().signal;

/** A probe QEMU that prints nothing and runs until it is killed (a KVM that hangs the guest). */
const hangs = (call: FakeCall): Promise<Partial<RunResult>> =>
  new Promise((resolve) => {
    const s = call.options.signal!;
    if (s.aborted) resolve({ code: null, signal: 'SIGTERM' });
    s.addEventListener('abort', () => resolve({ code: null, signal: 'SIGTERM' }), { once: true });
  });

describe('AccelProbe', () => {
  let dir: string;
  let qemu: string;
  let kvm: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-accel-'));
    qemu = path.join(dir, 'qemu-system-x86_64');
    fs.writeFileSync(qemu, '#!/bin/sh\n', { mode: 0o755 });
    kvm = path.join(dir, 'kvm');
    fs.writeFileSync(kvm, '');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const probe = (runner: FakeProcessRunner, options: Partial<AccelProbeOptions> = {}): AccelProbe =>
    new AccelProbe({
      runner, clock: new FakeClock(), qemu, accel: 'auto', cacheFile: path.join(dir, `decisions-${Math.random()}.json`), kvmDevice: kvm,
      bootId: () => 'boot-1', ...options,
    });

  it('reports a missing QEMU before anything else, with the package to install', async () => {
    const runner = new FakeProcessRunner();
    const p = probe(runner, { qemu: path.join(dir, 'qemu-system-missing') });
    assert.throws(() => p.known(kernel), fails('MISSING_TOOL', /qemu-system-missing is not installed/, { hint: true }));
    await assert.rejects(p.decide(kernel, { signal }), fails('MISSING_TOOL'));
    assert.equal(runner.calls.length, 0);
  });

  it('knows TCG at once when there is no usable /dev/kvm', async () => {
    const runner = new FakeProcessRunner();
    const p = probe(runner, { kvmDevice: path.join(dir, 'no-kvm') });
    assert.match(p.known(kernel)!.reason, /no usable/);
    assert.equal((await p.decide(kernel, { signal })).accel, 'tcg');
    assert.equal(runner.calls.length, 0);
  });

  it('honours vmm.accel in config without probing', async () => {
    const runner = new FakeProcessRunner();
    assert.equal(probe(runner, { accel: 'tcg' }).known(kernel)!.accel, 'tcg');
    assert.equal((await probe(runner, { accel: 'kvm' }).decide(kernel, { signal })).accel, 'kvm');
    assert.throws(() => probe(runner, { accel: 'kvm', kvmDevice: path.join(dir, 'no-kvm') }).known(kernel), fails('VMM_FAILED', /not usable/, { hint: true }));
    assert.equal(runner.calls.length, 0);
  });

  it('uses KVM when the test guest prints its marker; the probe dies with its parent and logs the whole boot', async () => {
    const runner = new FakeProcessRunner().on('setpriv', () => ({ stdout: `...\n${PROBE_MARKER}\n` }));
    const p = probe(runner);
    assert.equal(p.known(kernel), null);
    const choice = await p.decide(kernel, { signal });
    assert.equal(choice.accel, 'kvm');
    assert.match(choice.reason, /KVM booted a test guest/);
    const args = runner.calls[0]!.args;
    assert.deepEqual(args.slice(0, 4), ['--pdeathsig', 'KILL', '--', qemu]);
    assert.ok(args.includes('kvm') && args.includes('host'));
    assert.match(args[args.indexOf('-append') + 1]!, /loglevel=7 .*earlyprintk=ttyS0 banger\.probe=1/);
  });

  it('decides once per host boot, kernel and QEMU binary, remembered on disk whatever the outcome', async () => {
    const cacheFile = path.join(dir, 'remembered.json');
    for (const [answer, accel] of [[{ stdout: PROBE_MARKER }, 'kvm'], [{ code: 1, stderr: 'qemu: error: failed to set MSR 0x10a\n' }, 'tcg'], ['hang', 'tcg']] as const) {
      fs.rmSync(cacheFile, { force: true });
      const runner = new FakeProcessRunner().on('setpriv', (call) => (answer === 'hang' ? hangs(call) : answer));
      assert.equal((await probe(runner, { cacheFile }).decide(kernel, { signal })).accel, accel);
      // Another daemon (a new AccelProbe) on the same host boot reuses it, and knows it without waiting.
      const again = probe(runner, { cacheFile });
      assert.equal(again.known(kernel)?.accel, accel);
      assert.equal((await again.decide(kernel, { signal })).accel, accel);
      assert.equal(runner.calls.length, 1, `one probe for ${JSON.stringify(answer)}`);
      // A new boot, another kernel, or another QEMU binary asks again.
      assert.equal(probe(runner, { cacheFile, bootId: () => 'boot-2' }).known(kernel), null);
      assert.equal(probe(runner, { cacheFile }).known({ ...kernel, id: 'host-2' }), null);
      const otherQemu = path.join(dir, 'qemu-system-other');
      fs.writeFileSync(otherQemu, '#!/bin/sh\n# another build\n', { mode: 0o755 });
      assert.equal(probe(runner, { cacheFile, qemu: otherQemu }).known(kernel), null);
    }
  });

  it('gives up on a guest that goes silent, says after what, and keeps only this boot in the file', async () => {
    const cacheFile = path.join(dir, 'silent.json');
    fs.writeFileSync(cacheFile, JSON.stringify([{ key: 'v3 boot=boot-0 kernel=host-1 qemu=x', accel: 'kvm', reason: 'old', decidedAt: 'then' }]));
    const runner = new FakeProcessRunner().on('setpriv', (call) => {
      call.options.onLine!('Probing EDD (edd=off to disable)... ok', 'stdout');
      return hangs(call);
    });
    const clock = new FakeClock();
    const t0 = clock.now();
    const choice = await probe(runner, { cacheFile, clock }).decide(kernel, { signal });
    assert.equal(choice.accel, 'tcg');
    assert.match(choice.reason, new RegExp(`no console output for ${PROBE_STALL_MS / 1000}s after "Probing EDD`));
    assert.ok(clock.now() - t0 <= PROBE_STALL_MS + 250, 'decided as soon as the silence is long enough');
    const kept = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as Array<{ key: string }>;
    assert.deepEqual(kept.map((k) => k.key.split(' ')[1]), ['boot=boot-1']);
  });

  it('gives up on a guest that keeps printing but never finishes', async () => {
    const runner = new FakeProcessRunner().on('setpriv', async (call) => {
      while (!call.options.signal!.aborted) {
        call.options.onLine!('[    1.0] still booting', 'stdout');
        await new Promise((r) => setImmediate(r));
      }
      return { code: null, signal: 'SIGTERM' };
    });
    const choice = await probe(runner).decide(kernel, { signal });
    assert.equal(choice.accel, 'tcg');
    assert.match(choice.reason, new RegExp(`within ${PROBE_LIMIT_MS / 1000}s`));
  });

  it('decides afresh when asked, and shares one probe between callers; one caller cancelling does not stop it', async () => {
    let finish!: () => void;
    const runner = new FakeProcessRunner().on('setpriv', () => new Promise((resolve) => {
      finish = () => resolve({ stdout: PROBE_MARKER });
    }));
    // A clock that never wakes the watcher: the probe runs until its QEMU answers.
    const p = probe(runner, { clock: { now: () => 0, sleep: (_ms, s) => new Promise((resolve) => s?.addEventListener('abort', () => resolve(), { once: true })) } });
    const impatient = new AbortController();
    const first = p.decide(kernel, { signal: impatient.signal });
    const second = p.decide(kernel, { signal });
    await new Promise((r) => setImmediate(r));
    impatient.abort();
    await assert.rejects(first, fails('CANCELLED'));
    finish();
    assert.equal((await second).accel, 'kvm');
    assert.equal(runner.calls.length, 1);
    const fresh = p.decide(kernel, { signal, fresh: true });
    await new Promise((r) => setImmediate(r));
    finish();
    assert.equal((await fresh).accel, 'kvm');
    assert.equal(runner.calls.length, 2);
  });

  it('probes each kernel on its own', async () => {
    const runner = new FakeProcessRunner().on('setpriv', ({ args }) => (args.includes('/k2') ? { code: 1, stderr: 'error: nope' } : { stdout: PROBE_MARKER }));
    const p = probe(runner);
    const [a, b] = await Promise.all([p.decide(kernel, { signal }), p.decide({ ...kernel, id: 'host-2', kernelPath: '/k2' }, { signal })]);
    assert.deepEqual([a.accel, b.accel], ['kvm', 'tcg']);
    assert.match(b.reason, /cannot run this guest here \(nope\)/);
  });
});
