import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { QemuDriver } from '../../src/vmm/qemu/qemu-driver.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

describe('QemuDriver.isAlive', () => {
  let proc: string;
  const vmId = '15b3d443d3f8';

  /** A process in the fake /proc: its executable, command line and state. */
  function processAt(pid: number, exe: string, argv: string[], state = 'S'): void {
    const dir = path.join(proc, String(pid));
    fs.mkdirSync(dir, { recursive: true });
    fs.symlinkSync(exe, path.join(dir, 'exe'));
    fs.writeFileSync(path.join(dir, 'cmdline'), `${argv.join('\0')}\0`);
    fs.writeFileSync(path.join(dir, 'stat'), `${pid} (${path.basename(exe).slice(0, 15)}) ${state} 1 1 1`);
  }

  before(() => {
    proc = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-proc-'));
    processAt(100, '/usr/bin/qemu-system-x86_64', ['/usr/bin/qemu-system-x86_64', '-name', `banger-${vmId},process=banger-15b3d443`, '-M', 'microvm']);
    // Anything whose command line merely mentions the VM's name is not its VMM.
    processAt(101, '/usr/bin/sleep', ['sleep', '1000', `banger-${vmId}`, '-name', `banger-${vmId}`]);
    processAt(102, '/usr/bin/qemu-system-x86_64', ['/usr/bin/qemu-system-x86_64', '-name', `banger-${vmId}0,process=x`]);
    processAt(103, '/usr/bin/qemu-system-x86_64', ['/usr/bin/qemu-system-x86_64', '-name', `banger-${vmId}`], 'Z');
    // An upgraded QEMU still runs from its old, deleted file.
    processAt(104, '/usr/bin/qemu-system-x86_64 (deleted)', ['/usr/bin/qemu-system-x86_64', '-name', `banger-${vmId}`]);
  });
  after(() => fs.rmSync(proc, { recursive: true, force: true }));

  const driver = (): QemuDriver => new QemuDriver({
    runner: new FakeProcessRunner(), ops: new FakePrivilegedOps(), clock: new FakeClock(), qemu: 'qemu-system-x86_64', accel: 'tcg',
    cacheFile: path.join(proc, 'decisions.json'), procRoot: proc,
  });

  it('is true only for a live qemu-system process started with exactly this VM\'s -name', () => {
    const d = driver();
    assert.equal(d.isAlive(vmId, 100), true);
    assert.equal(d.isAlive(vmId, 104), true);
    assert.equal(d.isAlive(vmId, 101), false, 'another program naming the VM');
    assert.equal(d.isAlive(vmId, 102), false, 'another VM whose id starts with this one');
    assert.equal(d.isAlive(vmId, 103), false, 'a zombie');
    assert.equal(d.isAlive(vmId, 999), false, 'no such process');
    assert.equal(d.isAlive('aaaaaaaaaaaa', 100), false, 'another VM');
    assert.equal(d.isAlive(vmId, null), false);
  });
});
