// FirecrackerDriver's whole lifecycle against a fake Firecracker (test/fakes/firecracker): a real separate process
// started through a real bangerd-root launcher (HelperService) and a fake jailer, which serves Firecracker's API
// on its socket and accepts only requests that fit v1.16.1's swagger file, in Firecracker's order. What the
// driver sends is read back from the fake's records and checked against that file again here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { HelperService } from '../../src/helper/helper-service.ts';
import type { CallContext } from '../../src/protocol/jsonrpc.ts';
import type { KernelInfo } from '../../src/protocol/methods.ts';
import type { LaunchFirecrackerParams } from '../../src/protocol/privileged-ops.ts';
import { systemClock } from '../../src/system/clock.ts';
import { NodeProcessRunner, type ProcessRunner, type RunOptions, type RunResult } from '../../src/system/process.ts';
import { dialAgent } from '../../src/vmm/agent-dial.ts';
import { vmFilesIn, type BootSpec, type VmFiles } from '../../src/vmm/driver.ts';
import { FirecrackerApi } from '../../src/vmm/firecracker/fc-api.ts';
import { requests } from '../../src/vmm/firecracker/fc-requests.ts';
import { FirecrackerDriver } from '../../src/vmm/firecracker/firecracker-driver.ts';
import { fails } from '../fakes/expect-error.ts';
import { installFakeFirecracker, jailerRecords, requestsOf, type FakeFirecrackerInstall } from '../fakes/firecracker/install.ts';
import { Swagger } from '../fakes/firecracker/swagger.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

const OWNER = { uid: process.getuid!(), gid: process.getgid!() };

/**
 * Runs what bangerd-root runs (the fake jailer, the fake Firecracker), except `ip`, which it answers as if every
 * bgt… device were the owner's tap on `bridge`: the test makes no network devices, and the helper checks the
 * VM's tap before a launch.
 */
class TapsOfTheOwner implements ProcessRunner {
  private readonly real = new NodeProcessRunner();
  private readonly owner: { uid: number; gid: number };
  private readonly bridge: string;
  constructor(owner: { uid: number; gid: number }, bridge: string) {
    this.owner = owner;
    this.bridge = bridge;
  }

  async run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult> {
    const ip = command === 'setpriv' ? args.indexOf('ip') : -1;
    if (ip < 0) return this.real.run(command, args, options);
    const tap = args.at(-1)!;
    const exists = /^bgt[0-9a-f]+$/.test(tap);
    const details = [{ ifname: tap, master: this.bridge, linkinfo: { info_kind: 'tun', info_data: { type: 'tap', user: this.owner.uid, group: this.owner.gid } } }];
    const json = args.slice(ip + 1, ip + 3).join(' ') === '-j -d';
    return { code: exists ? 0 : 1, signal: null, stdout: exists && json ? JSON.stringify(details) : '', stderr: exists ? '' : `Device "${tap}" does not exist.` };
  }
}
const swagger = new Swagger();

interface World {
  root: string;
  fake: FakeFirecrackerInstall;
  stateDir: string;
  jailBase: string;
  kernel: KernelInfo;
  ops: FakePrivilegedOps;
  runner: FakeProcessRunner;
  driver(jailer: boolean): FirecrackerDriver;
  vm(vmId: string): { files: VmFiles; spec: BootSpec };
}

/** A state and cache directory, a kernel, an image, the fakes installed, and bangerd-root's launcher behind the ops. */
function makeWorld(): World {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'banger-fc-')));
  const stateDir = path.join(root, 'state');
  const cacheDir = path.join(root, 'cache');
  const jailBase = path.join(root, 'jail');
  for (const d of [stateDir, cacheDir, path.join(stateDir, 'kernels/k1'), path.join(cacheDir, 'images'), path.join(stateDir, 'vms'), path.join(root, 'netns')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(stateDir, 'kernels/k1/vmlinux'), 'ELF kernel');
  fs.writeFileSync(path.join(cacheDir, 'images/base.ext4'), 'image');
  fs.writeFileSync(path.join(root, 'kvm'), '');
  const fake = installFakeFirecracker(path.join(root, 'bin'));
  process.env.FAKE_FC_RECORD_DIR = fake.recordDir;
  const helper = new HelperService(new TapsOfTheOwner(OWNER, 'banger0'), {
    owner: OWNER, stateDir, cacheDir, runDir: stateDir, netnsDir: path.join(root, 'netns'), procDir: '/proc', jailBase,
    network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null },
  }, { clock: systemClock });
  const launch = helper.handlers(() => undefined).get('vmm.launchFirecracker')!;
  const ops = new FakePrivilegedOps();
  const ctx: CallContext = { signal: new AbortController().signal, progress: () => undefined };
  ops.launchFirecrackerWith = (params: LaunchFirecrackerParams) => launch(params, ctx) as Promise<{ pid: number }>;
  const runner = new FakeProcessRunner();
  const kernel: KernelInfo = {
    id: 'k1', version: '6.1', kernelPath: path.join(stateDir, 'kernels/k1/vmlinux'), initrdPath: path.join(stateDir, 'kernels/k1/initrd.img'),
    source: 'test', createdAt: '2026-11-24T00:00:00Z', format: 'elf',
  };
  return {
    root, fake, stateDir, jailBase, kernel, ops, runner,
    driver: (jailer) => new FirecrackerDriver({ ops, runner, clock: systemClock, firecracker: fake.firecracker, jailer: jailer ? fake.jailer : null, jailBase, kvmDevice: path.join(root, 'kvm') }),
    vm: (vmId) => {
      const files = vmFilesIn(path.join(stateDir, 'vms', vmId));
      fs.mkdirSync(files.dir, { recursive: true });
      fs.writeFileSync(files.initrd, 'initrd');
      const spec: BootSpec = { vmId, vcpus: 2, memoryMib: 1024, kernel, files, net: { tap: `bgt${vmId.slice(0, 8)}`, mac: '52:54:00:12:34:56' }, netns: null, accel: 'kvm' };
      return { files, spec };
    },
  };
}

const signal = (): AbortSignal => new AbortController().signal;

/** The method and path of each request the fake received, in order, with its status. */
const calls = (w: World, vmId: string): string[] => requestsOf(w.fake.recordDir, `banger-${vmId}`).map((r) => `${r.method} ${r.path} ${r.status}`);

describe('FirecrackerDriver under the jailer, against the fake Firecracker', () => {
  let w: World;
  const vmId = 'a1b2c3d4e5f6';
  let pid = 0;
  before(() => {
    w = makeWorld();
  });
  after(async () => {
    for (const p of [pid]) if (p) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(w.root, { recursive: true, force: true });
  });

  it('creates the disks: the image shared by a link, a sparse upper layer and a work disk, whatever the image size', async () => {
    const { files } = w.vm(vmId);
    await w.driver(true).prepareDisks(files, { baseImage: path.join(w.root, 'cache/images/base.ext4'), workDiskGib: 8, signal: signal() });
    assert.equal(fs.readlinkSync(path.join(files.dir, 'root-base.ext4')), path.join(w.root, 'cache/images/base.ext4'));
    assert.equal(fs.statSync(path.join(files.dir, 'root-upper.ext4')).size, 8 * 1024 ** 3);
    const labels = w.runner.callsTo('mkfs.ext4').map((c) => c.args[c.args.indexOf('-L') + 1]);
    assert.deepEqual(labels, ['banger-upper', 'banger-work']);
  });

  it('boots: the jailer gets the VM\'s ids, cgroup limits and pid namespace, and Firecracker every request in order', async () => {
    const { spec, files } = w.vm(vmId);
    ({ pid } = await w.driver(true).boot(spec, signal()));
    assert.ok(w.driver(true).isAlive(vmId, pid));
    assert.deepEqual(calls(w, vmId), [
      'PUT /logger 204', 'PUT /metrics 204', 'PUT /serial 204', 'PUT /machine-config 204', 'PUT /boot-source 204',
      'PUT /drives/rootfs 204', 'PUT /drives/upper 204', 'PUT /drives/work 204', 'PUT /network-interfaces/eth0 204', 'PUT /vsock 204', 'PUT /actions 204',
    ]);
    // Checked again here, by walking the swagger file, not by the fake's word alone.
    for (const r of requestsOf(w.fake.recordDir, `banger-${vmId}`)) {
      const route = swagger.route(r.method, r.path);
      assert.doesNotThrow(() => swagger.checkBody(route, r.method, r.body ?? undefined), `${r.method} ${r.path}`);
      assert.ok(!JSON.stringify(r.body).includes('null'), `${r.path} sends no null`);
    }
    const bodies = Object.fromEntries(requestsOf(w.fake.recordDir, `banger-${vmId}`).map((r) => [r.path, r.body]));
    assert.deepEqual(bodies['/drives/rootfs'], { drive_id: 'rootfs', path_on_host: '/drive-rootfs.img', is_root_device: false, is_read_only: true });
    assert.deepEqual(bodies['/machine-config'], { vcpu_count: 2, mem_size_mib: 1024 });
    assert.deepEqual(bodies['/vsock'], { guest_cid: 3, uds_path: '/vsock.sock' });
    assert.deepEqual(bodies['/network-interfaces/eth0'], { iface_id: 'eth0', host_dev_name: spec.net.tap, guest_mac: spec.net.mac });
    assert.match((bodies['/boot-source'] as { boot_args: string }).boot_args, /console=ttyS0 .* banger\.overlay=1$/);
    const [jail] = jailerRecords(w.fake.recordDir, `banger-${vmId}`);
    assert.equal(jail!.id, `banger-${vmId}`);
    assert.deepEqual([jail!.uid, jail!.gid, jail!.cgroupVersion, jail!.newPidNs, jail!.daemonize], [OWNER.uid, OWNER.gid, '2', true, true]);
    assert.deepEqual(jail!.cgroups, ['cpu.max=200000 100000', `memory.max=${(1024 + 256) * 1024 * 1024}`]);
    assert.deepEqual((jail!.argv as string[]).slice(-3), ['--', '--api-sock', '/api.sock']);
    // The jail holds the VM's own files, linked (same inode), not copied.
    const chroot = w.driver(true).layoutOf(files).chroot!;
    assert.equal(fs.statSync(path.join(chroot, 'drive-work.img')).ino, fs.statSync(files.workDisk).ino);
    assert.equal(fs.statSync(path.join(chroot, 'vmlinux')).ino, fs.statSync(w.kernel.kernelPath).ino);
    assert.equal(fs.statSync(path.join(chroot, 'serial.log')).ino, fs.statSync(files.serialLog).ino);
  });

  it('reaches the guest agent over vsock: CONNECT 52, an OK line, then the agent\'s stream', async () => {
    const { files } = w.vm(vmId);
    const s = await dialAgent(w.driver(true).agentEndpoint(files));
    const echoed = new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    s.resume();
    s.write('hello agent');
    assert.equal(await echoed, 'hello agent');
    s.destroy();
  });

  it('refuses what Firecracker refuses after boot: InstanceStart again, a drive, a snapshot of a running VM', async () => {
    const { files } = w.vm(vmId);
    const api = new FirecrackerApi(w.driver(true).layoutOf(files).apiSocket);
    await assert.rejects(api.send(requests.action({ action_type: 'InstanceStart' })), fails('VMM_FAILED', /\(400\): The requested operation is not supported after starting the microVM/));
    await assert.rejects(api.send(requests.drive({ drive_id: 'extra', path_on_host: '/drive-work.img', is_root_device: false })), fails('VMM_FAILED', /not supported after starting/));
    await assert.rejects(w.driver(true).createSnapshot({ files }), fails('VMM_FAILED', /Cannot save the microVM state/));
  });

  it('pauses, snapshots the paused VM into its directory, and resumes', async () => {
    const { files } = w.vm(vmId);
    const driver = w.driver(true);
    await driver.pause({ files });
    const snap = await driver.createSnapshot({ files });
    assert.ok(fs.existsSync(snap.statePath) && fs.existsSync(snap.memPath));
    assert.equal(path.dirname(snap.statePath), path.join(files.dir, 'snapshot'));
    await driver.resume({ files });
    const info = await new FirecrackerApi(driver.layoutOf(files).apiSocket).send(requests.describeInstance());
    assert.equal((info as { state: string }).state, 'Running');
    assert.deepEqual(calls(w, vmId).slice(-5), ['PUT /snapshot/create 400', 'PATCH /vm 204', 'PUT /snapshot/create 204', 'PATCH /vm 204', 'GET / 200']);
  });

  it('after a bangerd restart, finds the VM again through the jailer\'s pid file, checking the process is it', () => {
    const { files } = w.vm(vmId);
    const fresh = w.driver(true);
    assert.equal(fresh.findVmm(vmId, files), pid);
    assert.ok(fresh.isAlive(vmId, pid));
    assert.ok(!fresh.isAlive('ffffffffffff', pid), 'another VM\'s id');
    assert.ok(!fresh.isAlive(vmId, process.pid), 'a process that is not Firecracker');
    const pidFile = fresh.layoutOf(files).pidFile;
    const saved = fs.readFileSync(pidFile, 'utf8');
    fs.writeFileSync(pidFile, String(process.pid));
    assert.equal(fresh.findVmm(vmId, files), null);
    fs.writeFileSync(pidFile, saved);
  });

  it('stops with SIGKILL and empties the jail, so no link keeps the VM\'s disks alive', async () => {
    const { files } = w.vm(vmId);
    const driver = w.driver(true);
    await driver.stop({ vmId, pid, files });
    assert.ok(!driver.isAlive(vmId, pid));
    assert.deepEqual(fs.readdirSync(driver.layoutOf(files).chroot!), []);
    assert.equal(fs.statSync(files.workDisk).nlink, 1);
  });

  it('starts from the snapshot in a fresh Firecracker: snapshot/load comes before any boot resource, on this boot\'s tap', async () => {
    const { spec, files } = w.vm(vmId);
    const driver = w.driver(true);
    const before = calls(w, vmId).length;
    ({ pid } = await driver.bootFromSnapshot({ ...spec, net: { ...spec.net, tap: 'bgt99999999' } }, signal()));
    assert.deepEqual(calls(w, vmId).slice(before), ['PUT /logger 204', 'PUT /metrics 204', 'PUT /serial 204', 'PUT /snapshot/load 204']);
    const load = requestsOf(w.fake.recordDir, `banger-${vmId}`).at(-1)!.body;
    assert.deepEqual(load, {
      snapshot_path: '/snapshot.state', mem_backend: { backend_type: 'File', backend_path: '/snapshot.mem' }, resume_vm: true,
      network_overrides: [{ iface_id: 'eth0', host_dev_name: 'bgt99999999' }],
    });
    const info = await new FirecrackerApi(driver.layoutOf(files).apiSocket).send(requests.describeInstance());
    assert.equal((info as { state: string }).state, 'Running');
  });

  it('kills on request (vm kill)', async () => {
    const { files } = w.vm(vmId);
    const driver = w.driver(true);
    await driver.terminate({ vmId, pid }, 'SIGKILL');
    assert.ok(!driver.isAlive(vmId, pid));
    await driver.stop({ vmId, pid, files });
  });
});

describe('FirecrackerDriver without the jailer', () => {
  let w: World;
  const vmId = '0f0e0d0c0b0a';
  let pid = 0;
  before(() => {
    w = makeWorld();
  });
  after(() => {
    if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(w.root, { recursive: true, force: true });
  });

  it('runs Firecracker as the owner with the host\'s paths, and stops it', async () => {
    const { spec, files } = w.vm(vmId);
    const driver = w.driver(false);
    await driver.prepareDisks(files, { baseImage: path.join(w.root, 'cache/images/base.ext4'), workDiskGib: 1, signal: signal() });
    ({ pid } = await driver.boot(spec, signal()));
    assert.equal(driver.findVmm(vmId, files), pid);
    assert.deepEqual(jailerRecords(w.fake.recordDir, `banger-${vmId}`), []);
    const bodies = Object.fromEntries(requestsOf(w.fake.recordDir, `banger-${vmId}`).map((r) => [r.path, r.body]));
    assert.deepEqual(bodies['/drives/work'], { drive_id: 'work', path_on_host: files.workDisk, is_root_device: false, is_read_only: false });
    assert.equal((bodies['/vsock'] as { uds_path: string }).uds_path, path.join(files.dir, 'fc-vsock.sock'));
    assert.match(driver.knownAccel(w.kernel)!.reason, /without the jailer/);
    await driver.stop({ vmId, pid, files });
    assert.ok(!driver.isAlive(vmId, pid));
  });

  it('refuses a bzImage kernel: Firecracker boots only an ELF vmlinux', async () => {
    const { spec } = w.vm('111111111111');
    await assert.rejects(w.driver(false).boot({ ...spec, kernel: { ...w.kernel, format: 'bzimage' } }, signal()), fails('KERNEL_NOT_FOUND', /ELF vmlinux/));
  });
});
