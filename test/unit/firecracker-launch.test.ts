// bangerd-root's vmm.launchFirecracker refuses anything but banger's own files, ids and sizes before it starts
// a process (HELPER_REFUSED), as vmm.launchQemu does.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
const IS_ROOT = process.getuid?.() === 0;

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
        drives: [{ id: 'work', path: path.join(vmDir, 'work.ext4'), readOnly: false }], serialLog: path.join(vmDir, 'serial.log'), tap: null, snapshot: null,
      },
    });
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  const withSpec = (change: Partial<LaunchFirecrackerParams['spec']>): LaunchFirecrackerParams => ({ ...valid(), spec: { ...valid().spec, ...change } });

  it('refuses programs that are not Firecracker or its jailer', async () => {
    await assert.rejects(launch({ ...valid(), firecracker: '/bin/sh' }), refused(/must be a program whose name contains "firecracker"/));
    await assert.rejects(launch({ ...valid(), jailer: '/bin/sh' }), refused(/contains "jailer"/));
    await assert.rejects(launch({ ...valid(), firecracker: `${root}/bin/../bin/firecracker` }), refused(/without \. or \.\. components/));
    await assert.rejects(launch({ ...valid(), jailer: 'bin/jailer' }), refused(/a name on PATH or an absolute path/));
    await assert.rejects(launch({ ...valid(), firecracker: 'firecracker;sh' }), refused(/firecracker binary/));
    const shell = path.join(root, 'links', 'firecracker');
    fs.mkdirSync(path.dirname(shell), { recursive: true });
    fs.symlinkSync('/bin/sh', shell);
    await assert.rejects(launch({ ...valid(), firecracker: shell }), refused(/\/bin\/(da|ba)?sh, a program whose name does not contain "firecracker"/));
  });

  it('refuses a Firecracker or jailer that someone other than root could replace', async () => {
    // A directory anyone may write to: its firecracker could be anyone's.
    const open = path.join(root, 'open');
    fs.mkdirSync(open, { recursive: true });
    fs.chmodSync(open, 0o777);
    for (const name of ['firecracker', 'jailer']) fs.copyFileSync(valid().jailer!.replace(/jailer$/, name), path.join(open, name));
    for (const name of ['firecracker', 'jailer']) fs.chmodSync(path.join(open, name), 0o755);
    await assert.rejects(launch({ ...valid(), firecracker: path.join(open, 'firecracker') }), refused(/firecracker binary .* is not a program of the host's: .*writable by others/));
    await assert.rejects(launch({ ...valid(), jailer: path.join(open, 'jailer') }), refused(/jailer binary .* is not a program of the host's/));
  });

  it("refuses another uid's Firecracker (the owner's own script would run as root)", { skip: !IS_ROOT && 'needs root to give the file away' }, async () => {
    const theirs = path.join(root, 'theirs');
    fs.mkdirSync(theirs, { mode: 0o755 });
    fs.copyFileSync(valid().firecracker, path.join(theirs, 'firecracker'));
    fs.chmodSync(path.join(theirs, 'firecracker'), 0o755);
    fs.chownSync(path.join(theirs, 'firecracker'), 65534, 65534);
    await assert.rejects(launch({ ...valid(), firecracker: path.join(theirs, 'firecracker') }), refused(/belongs to uid 65534/));
  });

  it('refuses files outside banger\'s directories, a serial log outside the VM\'s directory, and bad drive ids', async () => {
    await assert.rejects(launch(withSpec({ kernelPath: path.join(root, 'outside.img') })), refused(/outside banger's directories/));
    await assert.rejects(launch(withSpec({ drives: [{ id: 'work', path: path.join(root, 'outside.img'), readOnly: false }] })), refused(/outside/));
    await assert.rejects(launch(withSpec({ serialLog: path.join(root, 'state/vms/serial.log') })), refused(/not in the directory of VM/));
    await assert.rejects(launch(withSpec({ drives: [{ id: 'Work-1', path: valid().spec.drives[0]!.path, readOnly: false }] })), refused(/drive 0 id/));
    await assert.rejects(launch(withSpec({ drives: [valid().spec.drives[0]!, valid().spec.drives[0]!] })), refused(/given twice/));
    await assert.rejects(launch(withSpec({ vmId: '../etc' })), refused(/vm id/));
  });

  it('refuses a VM that is not the owner\'s, and files that are not plainly the VM\'s', async () => {
    const vmDir = path.dirname(valid().spec.serialLog);
    await assert.rejects(launch(withSpec({ vmId: 'abcdef012345' })), refused(/vm id abcdef012345 is not a VM of this owner's/));
    fs.symlinkSync(path.join(vmDir, 'vmlinux'), path.join(vmDir, 'kernel-link'));
    await assert.rejects(launch(withSpec({ kernelPath: path.join(vmDir, 'kernel-link') })), refused(/kernel .* is a symlink/));
    await assert.rejects(launch(withSpec({ initrdPath: `${vmDir}/../${VM_ID}/initrd.img` })), refused(/\.\. component/));
    spawnSync('mkfifo', [path.join(vmDir, 'fifo')]);
    await assert.rejects(launch(withSpec({ drives: [{ id: 'work', path: path.join(vmDir, 'fifo'), readOnly: false }] })), refused(/drive work .* is a FIFO/));
    await assert.rejects(launch(withSpec({ serialLog: path.join(vmDir, 'fifo') })), refused(/serial log .* is a FIFO/));
    fs.rmSync(path.join(vmDir, 'firecracker.log'), { force: true });
    fs.symlinkSync('/etc/passwd', path.join(vmDir, 'firecracker.log'));
    try {
      await assert.rejects(launch(valid()), refused(/Firecracker's firecracker\.log .* is a symlink/));
    } finally {
      fs.rmSync(path.join(vmDir, 'firecracker.log'));
    }
    const elsewhere = { statePath: path.join(vmDir, 'vmlinux'), memPath: path.join(vmDir, 'initrd.img') };
    await assert.rejects(launch(withSpec({ snapshot: elsewhere })), refused(/is not where VM .* snapshot is kept/));
  });

  it("hands the VM only the owner's own tap on the helper's bridge", async () => {
    const links: Record<string, object> = {
      bgt0000000001: { master: 'banger0', linkinfo: { info_kind: 'tun', info_data: { type: 'tap', user: 65533 } } },
      bgt0000000002: { master: 'docker0', linkinfo: { info_kind: 'tun', info_data: { type: 'tap', user: process.getuid!() } } },
      bgt0000000003: { linkinfo: { info_kind: 'veth' } },
    };
    runner.on('setpriv', ({ args }) => {
      const tap = args.at(-1)!;
      if (!(tap in links)) return { code: 1, stderr: `Device "${tap}" does not exist.` };
      return args.includes('-j') ? { stdout: JSON.stringify([{ ifname: tap, ...links[tap] }]) } : { code: 0 };
    });
    await assert.rejects(launch(withSpec({ tap: 'eth0' })), refused(/tap name/));
    await assert.rejects(launch(withSpec({ tap: 'bgt00000000ff' })), refused(/tap bgt00000000ff does not exist/));
    await assert.rejects(launch(withSpec({ tap: 'bgt0000000001' })), refused(/belongs to uid 65533/));
    await assert.rejects(launch(withSpec({ tap: 'bgt0000000002' })), refused(/is on bridge docker0/));
    await assert.rejects(launch(withSpec({ tap: 'bgt0000000003' })), refused(/is a veth device, not a tap/));
  });

  it("refuses a jailer's pid file that names a process other than the VM's Firecracker, and empties the jail", async () => {
    const chroot = path.join(root, 'jail', 'firecracker', `banger-${VM_ID}`, 'root');
    for (const [who, pid] of [['pid 1', 1], ['the test itself', process.pid]] as const) {
      runner.on(valid().jailer!, () => {
        fs.writeFileSync(path.join(chroot, 'firecracker.pid'), `${pid}\n`);
        return { code: 0 };
      });
      await assert.rejects(launch(valid()), refused(new RegExp(`names process ${pid}, which is not banger's: it runs`)), who);
      assert.deepEqual(fs.readdirSync(chroot), [], `nothing of the VM's stays linked in the jail (${who})`);
    }
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
