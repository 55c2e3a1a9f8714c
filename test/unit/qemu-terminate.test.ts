// QemuDriver.terminate (vm kill): the signal goes to the VM's own QEMU only, and one that does not end it is an error.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { QemuDriver } from '../../src/vmm/qemu/qemu-driver.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

describe('QemuDriver.terminate', () => {
  const vmId = '15b3d443d3f8';
  let proc: string;

  beforeEach(() => {
    proc = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-proc-'));
  });
  afterEach(() => fs.rmSync(proc, { recursive: true, force: true }));

  /** Makes the fake /proc say `pid` is this VM's QEMU (and keeps saying so, whatever happens to it). */
  function fakeQemu(pid: number): void {
    const dir = path.join(proc, String(pid));
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync('/usr/bin/qemu-system-x86_64', path.join(dir, 'exe'));
    fs.writeFileSync(path.join(dir, 'cmdline'), ['/usr/bin/qemu-system-x86_64', '-name', `banger-${vmId}`, ''].join('\0'));
    fs.writeFileSync(path.join(dir, 'stat'), `${pid} (qemu-system-x86) S 1 1 1`);
  }

  const driver = (): QemuDriver => new QemuDriver({
    runner: new FakeProcessRunner(), ops: new FakePrivilegedOps(), clock: new FakeClock(), qemu: 'qemu-system-x86_64', accel: 'tcg',
    cacheFile: path.join(proc, 'decisions.json'), procRoot: proc,
  });

  it('sends the signal to the process, and fails with VMM_FAILED (naming SIGKILL) while it still looks alive', async () => {
    const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    fakeQemu(child.pid!);
    await assert.rejects(driver().terminate({ vmId, pid: child.pid! }, 'SIGTERM'), (err: unknown) => {
      fails('VMM_FAILED', /did not exit within 5s of SIGTERM/)(err);
      assert.match((err as Error & { hint: string }).hint, /--signal KILL/);
      return true;
    });
    const [code, signal] = await exited;
    assert.deepEqual([code, signal], [null, 'SIGTERM']);
  });

  it('signals nothing that is not this VM\'s QEMU', async () => {
    const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
    const exited = once(child, 'exit');
    await driver().terminate({ vmId, pid: child.pid! }, 'SIGTERM');
    await driver().terminate({ vmId, pid: null }, 'SIGTERM');
    // Had terminate signalled it, SIGTERM would have ended it before this SIGKILL arrived.
    child.kill('SIGKILL');
    assert.deepEqual(await exited, [null, 'SIGKILL']);
  });
});
