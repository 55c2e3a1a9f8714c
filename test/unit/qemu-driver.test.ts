import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KernelInfo } from '../../src/protocol/methods.ts';
import type { RunResult } from '../../src/system/process.ts';
import { PROBE_MARKER } from '../../src/system/guest-contract.ts';
import { QemuDriver } from '../../src/vmm/qemu/qemu-driver.ts';
import { findExecutable } from '../../src/system/executable.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';

describe('QemuDriver.selectAccel', () => {
  let dir: string;
  let qemu: string;
  let kvm: string;
  const kernel: KernelInfo = { id: 'host-1', version: '1', kernelPath: '/k', initrdPath: '/i', source: 'test', createdAt: '' };
  const signal = new AbortController().signal;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-qemu-driver-'));
    qemu = path.join(dir, 'qemu-system-x86_64');
    fs.writeFileSync(qemu, '#!/bin/sh\n', { mode: 0o755 });
    kvm = path.join(dir, 'kvm');
    fs.writeFileSync(kvm, '');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const driver = (runner: FakeProcessRunner, options: { qemu?: string; accel?: 'auto' | 'kvm' | 'tcg'; kvmDevice?: string } = {}) =>
    new QemuDriver({ runner, ops: new FakePrivilegedOps(), qemu: options.qemu ?? qemu, accel: options.accel ?? 'auto', cacheFile: path.join(dir, `probe-${Math.random()}.json`), kvmDevice: options.kvmDevice ?? kvm });

  it('reports a missing QEMU before anything else, with the package to install', async () => {
    const runner = new FakeProcessRunner();
    await assert.rejects(driver(runner, { qemu: path.join(dir, 'qemu-system-missing') }).selectAccel(kernel, signal), fails('MISSING_TOOL', /qemu-system-missing is not installed/, { hint: true }));
    assert.equal(runner.calls.length, 0);
  });

  it('uses TCG without probing when there is no usable /dev/kvm', async () => {
    const runner = new FakeProcessRunner();
    const choice = await driver(runner, { kvmDevice: path.join(dir, 'no-kvm') }).selectAccel(kernel, signal);
    assert.equal(choice.accel, 'tcg');
    assert.match(choice.reason, /no usable/);
    assert.equal(runner.calls.length, 0);
  });

  it('uses KVM when the probe guest prints its marker, and probes once per kernel', async () => {
    const runner = new FakeProcessRunner().on(qemu, () => ({ stdout: `...\n${PROBE_MARKER}\n` }));
    const d = driver(runner);
    assert.equal((await d.selectAccel(kernel, signal)).accel, 'kvm');
    assert.equal((await d.selectAccel(kernel, signal)).accel, 'kvm');
    assert.equal(runner.calls.length, 1);
    assert.ok(runner.calls[0]!.args.includes('kvm'));
  });

  it('falls back to TCG and says why when KVM cannot run the guest or hangs', async () => {
    const crash = await driver(new FakeProcessRunner().on(qemu, () => ({ code: 1, stderr: 'qemu-system-x86_64: error: failed to set MSR 0x10a\n' }))).selectAccel(kernel, signal);
    assert.deepEqual([crash.accel, /cannot run this guest here \(failed to set MSR 0x10a\)/.test(crash.reason)], ['tcg', true]);
    const hang = await driver(new FakeProcessRunner().on(qemu, () => ({ code: null, signal: 'SIGTERM', timedOut: true }))).selectAccel(kernel, signal);
    assert.deepEqual([hang.accel, /did not boot a test guest within/.test(hang.reason)], ['tcg', true]);
  });

  it('does not remember a probe that timed out, but does remember one that failed', async () => {
    let answer: Partial<RunResult> = { code: null, signal: 'SIGTERM', timedOut: true };
    const runner = new FakeProcessRunner().on(qemu, () => answer);
    const d = driver(runner);
    assert.equal((await d.selectAccel(kernel, signal)).accel, 'tcg');
    answer = { stdout: PROBE_MARKER };
    assert.equal((await d.selectAccel(kernel, signal)).accel, 'kvm');
    assert.equal(runner.calls.length, 2);
    const failing = new FakeProcessRunner().on(qemu, () => ({ code: 1, stderr: 'qemu: error: KVM_SET_CPUID2 failed' }));
    const d2 = driver(failing);
    await d2.selectAccel(kernel, signal);
    await d2.selectAccel(kernel, signal);
    assert.equal(failing.calls.length, 1);
  });

  it('shares one probe between callers; one caller cancelling does not cancel it for the others', async () => {
    let finish!: () => void;
    const runner = new FakeProcessRunner().on(qemu, () => new Promise((resolve) => {
      finish = () => resolve({ stdout: PROBE_MARKER });
    }));
    const d = driver(runner);
    const impatient = new AbortController();
    const first = d.selectAccel(kernel, impatient.signal);
    const second = d.selectAccel(kernel, signal);
    await new Promise((r) => setImmediate(r));
    impatient.abort();
    await assert.rejects(first, fails('CANCELLED'));
    finish();
    assert.equal((await second).accel, 'kvm');
    assert.equal(runner.calls.length, 1);
    assert.equal(runner.calls[0]!.options.signal, undefined, 'the probe must not die with the first caller');
  });

  it('probes each kernel on its own', async () => {
    const runner = new FakeProcessRunner().on(qemu, ({ args }) => (args.includes('/k2') ? { code: 1, stderr: 'error: nope' } : { stdout: PROBE_MARKER }));
    const d = driver(runner);
    const [a, b] = await Promise.all([d.selectAccel(kernel, signal), d.selectAccel({ ...kernel, id: 'host-2', kernelPath: '/k2' }, signal)]);
    assert.deepEqual([a.accel, b.accel], ['kvm', 'tcg']);
  });

  it('honours vmm.accel = "tcg" without probing', async () => {
    const runner = new FakeProcessRunner();
    assert.equal((await driver(runner, { accel: 'tcg' }).selectAccel(kernel, signal)).accel, 'tcg');
    assert.equal(runner.calls.length, 0);
  });
});

describe('findExecutable', () => {
  it('finds a program on PATH and refuses directories and missing names', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-which-'));
    try {
      fs.writeFileSync(path.join(dir, 'tool'), '', { mode: 0o755 });
      fs.mkdirSync(path.join(dir, 'adir'));
      assert.equal(findExecutable('tool', `/nonexistent:${dir}`), path.join(dir, 'tool'));
      assert.throws(() => findExecutable('adir', dir), fails('MISSING_TOOL'));
      assert.throws(() => findExecutable('nope', dir), fails('MISSING_TOOL'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
