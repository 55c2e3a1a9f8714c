// What `vm create` costs on the Firecracker path for a 1 GiB and an 8 GiB image: the VM's disks (image linked,
// sparse overlay disk, work disk, real mkfs.ext4) and the launch through bangerd-root's launcher with the fake
// jailer and fake Firecracker (test/fakes/firecracker), configured to InstanceStart. The images are fully
// allocated (fallocate), so anything that copied them would show. Prints the medians and their ratios (goal
// <= 1.05). No guest boots: Firecracker cannot run on these machines. Needs no root; uses /tmp (9 GiB for a while).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { HelperService } from '../src/helper/helper-service.ts';
import type { CallContext } from '../src/protocol/jsonrpc.ts';
import type { LaunchFirecrackerParams } from '../src/protocol/privileged-ops.ts';
import { systemClock } from '../src/system/clock.ts';
import { NodeProcessRunner } from '../src/system/process.ts';
import { vmFilesIn } from '../src/vmm/driver.ts';
import { FirecrackerDriver } from '../src/vmm/firecracker/firecracker-driver.ts';
import { FakePrivilegedOps } from '../test/fakes/fake-privileged-ops.ts';
import { installFakeFirecracker } from '../test/fakes/firecracker/install.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? '7');
const GOAL = 1.05;
const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'banger-fc-bench-')));
const median = (v: number[]): number => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

try {
  const stateDir = path.join(root, 'state');
  const cacheDir = path.join(root, 'cache');
  for (const d of [stateDir, cacheDir, path.join(stateDir, 'vms'), path.join(cacheDir, 'images')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(stateDir, 'vmlinux'), 'kernel');
  const images: Record<string, string> = {};
  for (const gib of [1, 8]) {
    const image = path.join(cacheDir, 'images', `${gib}g.ext4`);
    execFileSync('fallocate', ['-l', `${gib}G`, image]);
    execFileSync('mkfs.ext4', ['-q', '-F', '-L', 'banger-root', image]);
    images[`${gib} GiB`] = image;
  }
  const fake = installFakeFirecracker(path.join(root, 'bin'));
  process.env.FAKE_FC_RECORD_DIR = fake.recordDir;
  const helper = new HelperService(new NodeProcessRunner(), {
    owner: { uid: process.getuid!(), gid: process.getgid!() }, stateDir, cacheDir, runDir: stateDir, netnsDir: '/run/netns', procDir: '/proc',
    jailBase: path.join(root, 'jail'), network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null },
  }, { clock: systemClock });
  const launch = helper.handlers(() => undefined).get('vmm.launchFirecracker')!;
  const ctx: CallContext = { signal: new AbortController().signal, progress: () => undefined };
  const ops = new FakePrivilegedOps();
  ops.launchFirecrackerWith = (p: LaunchFirecrackerParams) => launch(p, ctx) as Promise<{ pid: number }>;
  fs.writeFileSync(path.join(root, 'kvm'), '');
  const driver = new FirecrackerDriver({ ops, runner: new NodeProcessRunner(), clock: systemClock, firecracker: fake.firecracker, jailer: fake.jailer, jailBase: path.join(root, 'jail'), kvmDevice: path.join(root, 'kvm') });
  const kernel = { id: 'k', version: '6.1', kernelPath: path.join(stateDir, 'vmlinux'), initrdPath: '', source: 'bench', createdAt: '', format: 'elf' as const };

  const samples: Record<string, { disks: number[]; total: number[] }> = { '1 GiB': { disks: [], total: [] }, '8 GiB': { disks: [], total: [] } };
  let n = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    for (const [label, image] of Object.entries(images)) {
      const vmId = (0xa00000000000 + n++).toString(16);
      const files = vmFilesIn(path.join(stateDir, 'vms', vmId));
      fs.mkdirSync(files.dir, { recursive: true });
      fs.writeFileSync(files.initrd, 'initrd');
      const t0 = performance.now();
      await driver.prepareDisks(files, { baseImage: image, workDiskGib: 8, signal: ctx.signal });
      const t1 = performance.now();
      const { pid } = await driver.boot({ vmId, vcpus: 1, memoryMib: 512, kernel, files, net: { tap: 'bgt00000000', mac: '52:54:00:00:00:01' }, netns: null, accel: 'kvm' }, ctx.signal);
      const t2 = performance.now();
      await driver.stop({ vmId, pid, files });
      fs.rmSync(files.dir, { recursive: true, force: true });
      samples[label]!.disks.push(t1 - t0);
      samples[label]!.total.push(t2 - t0);
    }
  }
  for (const [label, s] of Object.entries(samples)) {
    process.stdout.write(`${label} image: disks ${median(s.disks).toFixed(1)} ms, disks + launch + configure ${median(s.total).toFixed(1)} ms (median of ${ITERATIONS})\n`);
  }
  // The disks are what the image's size could change; the launch is two Node processes (the fakes) starting.
  const disks = median(samples['8 GiB']!.disks) / median(samples['1 GiB']!.disks);
  const total = median(samples['8 GiB']!.total) / median(samples['1 GiB']!.total);
  process.stdout.write(`ratio 8 GiB / 1 GiB: disks ${disks.toFixed(3)}, disks + launch ${total.toFixed(3)} (goal <= ${GOAL})\n`);
} finally {
  fs.rmSync(root, { recursive: true, force: true });
}
