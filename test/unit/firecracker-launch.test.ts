// bangerd-root's vmm.launchFirecracker refuses anything but banger's own files, ids and sizes before it starts
// a process (HELPER_REFUSED), as vmm.launchQemu does.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HelperService } from '../../src/helper/helper-service.ts';
import type { LaunchFirecrackerParams } from '../../src/protocol/privileged-ops.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';
import { installFakeFirecracker } from '../fakes/firecracker/install.ts';

const refused = (pattern?: RegExp) => fails('HELPER_REFUSED', pattern);
const VM_ID = '0123456789ab';

describe('vmm.launchFirecracker', () => {
  let root: string;
  let runner: FakeProcessRunner;
  let launch: (p: unknown) => Promise<unknown>;
  let valid: () => LaunchFirecrackerParams;
  before(() => {
    root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'banger-fclaunch-')));
    const stateDir = path.join(root, 'state');
    const vmDir = path.join(stateDir, 'vms', VM_ID);
    fs.mkdirSync(vmDir, { recursive: true });
    for (const f of ['vmlinux', 'initrd.img', 'work.ext4']) fs.writeFileSync(path.join(vmDir, f), f);
    fs.writeFileSync(path.join(root, 'outside.img'), 'not banger\'s');
    const fake = installFakeFirecracker(path.join(root, 'bin'));
    runner = new FakeProcessRunner();
    const helper = new HelperService(runner, {
      owner: { uid: process.getuid!(), gid: process.getgid!() }, stateDir, cacheDir: path.join(root, 'cache'), runDir: stateDir, netnsDir: path.join(root, 'netns'), procDir: '/proc',
      jailBase: path.join(root, 'jail'), network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null },
    }, { clock: new FakeClock() });
    const handler = helper.handlers(() => undefined).get('vmm.launchFirecracker')!;
    launch = (p) => handler(p, { signal: new AbortController().signal, progress: () => undefined });
    valid = () => ({
      firecracker: fake.firecracker, jailer: fake.jailer, netns: null,
      spec: {
        vmId: VM_ID, vcpus: 2, memoryMib: 1024, kernelPath: path.join(vmDir, 'vmlinux'), initrdPath: path.join(vmDir, 'initrd.img'),
        drives: [{ id: 'work', path: path.join(vmDir, 'work.ext4'), readOnly: false }], serialLog: path.join(vmDir, 'serial.log'), snapshot: null,
      },
    });
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  const withSpec = (change: Partial<LaunchFirecrackerParams['spec']>): LaunchFirecrackerParams => ({ ...valid(), spec: { ...valid().spec, ...change } });

  it('refuses programs that are not Firecracker or its jailer', async () => {
    await assert.rejects(launch({ ...valid(), firecracker: '/bin/sh' }), refused(/must be a program whose name contains "firecracker"/));
    await assert.rejects(launch({ ...valid(), jailer: '/bin/sh' }), refused(/contains "jailer"/));
  });

  it('refuses files outside banger\'s directories, a serial log outside the VM\'s directory, and bad drive ids', async () => {
    await assert.rejects(launch(withSpec({ kernelPath: path.join(root, 'outside.img') })), refused(/outside banger's directories/));
    await assert.rejects(launch(withSpec({ drives: [{ id: 'work', path: path.join(root, 'outside.img'), readOnly: false }] })), refused(/outside/));
    await assert.rejects(launch(withSpec({ serialLog: path.join(root, 'state/vms/serial.log') })), refused(/not in the directory of VM/));
    await assert.rejects(launch(withSpec({ drives: [{ id: 'Work-1', path: valid().spec.drives[0]!.path, readOnly: false }] })), refused(/drive 0 id/));
    await assert.rejects(launch(withSpec({ drives: [valid().spec.drives[0]!, valid().spec.drives[0]!] })), refused(/given twice/));
    await assert.rejects(launch(withSpec({ vmId: '../etc' })), refused(/vm id/));
  });

  it('refuses sizes Firecracker cannot take, a namespace that is not the helper\'s, and fields it does not know', async () => {
    await assert.rejects(launch(withSpec({ vcpus: 33 })), refused(/vcpus must be a whole number from 1 to 32/));
    await assert.rejects(launch(withSpec({ memoryMib: 64 })), refused(/memory/));
    await assert.rejects(launch({ ...valid(), netns: 'other' }), refused(/manages network namespace/));
    await assert.rejects(launch({ ...valid(), spec: { ...valid().spec, cpuTemplate: 'T2' } }), refused(/unknown field "cpuTemplate"/));
  });

  it('reports a jailer that fails, with its words', async () => {
    runner.on(valid().jailer!, () => ({ code: 1, stderr: 'Jailer error: Failed to mount cgroup\n' }));
    await assert.rejects(launch(valid()), fails('VMM_FAILED', /the jailer did not start Firecracker: Jailer error: Failed to mount cgroup/));
  });
});
