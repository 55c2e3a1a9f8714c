// Cold-boot benchmark: banger's VM from QEMU start to sshd answering, against the kernel's own floor in the same
// run: the same kernel, QEMU binary, accelerator, vCPUs, memory, command line and devices, booting a 1 MB
// initramfs whose /init prints a line and powers off (busybox-static). Prints the ratio of the medians (goal
// <= 1.4) and, for each banger boot, the guest's own split (kernel + banger's initrd, then systemd's userspace
// until ssh.service was active and until the boot finished). Never fails on the ratio.
//
// banger's side is `banger vm create` of a fresh VM, timed from its QEMU process's start (read from /proc) to
// the CLI's return, which comes once `ssh true` succeeded (the agent answered first). The floor is timed from its
// QEMU process's start to that process's exit. Both QEMUs run in the benchmark's network namespace.
//
// Like the other VM benchmarks: a fresh BANGER_HOME under /var/tmp (removed at the end) unless BANGER_BENCH_HOME
// is set, so the warm-up builds the image and kernel as a new user's first run does.
//
// Environment: BANGER_BENCH_HOME, BENCH_ITERATIONS (default 3 of each, alternating), BENCH_VERBOSE=1.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { BANGER, benchHome, median } from './bench-home.ts';
import { cmdlineOf, epochMs, isRunning, loadavg, processStartMs, qemuPids } from './bench-proc.ts';
import { buildQemuArgv, guestCmdline } from '../src/system/qemu-argv.ts';
import { hostTscKhz } from '../src/vmm/qemu/qemu-driver.ts';
import { S_IFCHR, S_IFDIR, S_IFREG, writeCpio } from '../src/kernel/cpio.ts';
import type { ImageInfo, KernelInfo, VmInfo } from '../src/protocol/methods.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 3);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const GOAL = 1.4;
const FLOOR_MARKER = 'banger-floor: init reached';
let current: string[] = [];
const bench = benchHome('coldboot', () => current);
const { env: ENV, note, home: HOME, netns: NETNS } = bench;

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function banger(args: string[], timeoutMs = 20 * 60_000): string {
  const r = spawnSync(BANGER, args, { env: ENV, encoding: 'utf8', timeout: timeoutMs });
  if (VERBOSE) process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`banger ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return r.stdout;
}

function sh(command: string, args: string[]): void {
  const r = spawnSync(command, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${r.stderr}`);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls /proc until a QEMU whose command line has `needle` appears; returns its pid and start time. */
async function watchQemuStart(needle: string, stop: () => boolean): Promise<{ pid: number; start: number } | null> {
  for (;;) {
    const [pid] = qemuPids(needle);
    if (pid !== undefined) {
      const start = processStartMs(pid);
      if (start !== null) return { pid, start };
    }
    if (stop()) return null;
    await sleep(20);
  }
}

interface GuestSplit {
  kernelS: number;
  sshActiveS: number;
  userspaceS: number;
}

/** The guest's own view of its boot: systemd's timestamps (monotonic, since the kernel started). */
function guestSplit(name: string): GuestSplit {
  const out = banger(['vm', 'ssh', name, '--', 'sh', '-c',
    'systemctl is-system-running --wait >/dev/null; systemctl show -p UserspaceTimestampMonotonic -p FinishTimestampMonotonic; systemctl show -p ActiveEnterTimestampMonotonic ssh.service'], 120_000);
  const prop = (key: string): number => Number(new RegExp(`^${key}=(\\d+)`, 'm').exec(out)?.[1] ?? NaN) / 1e6;
  const userspace = prop('UserspaceTimestampMonotonic');
  return { kernelS: userspace, sshActiveS: prop('ActiveEnterTimestampMonotonic') - userspace, userspaceS: prop('FinishTimestampMonotonic') - userspace };
}

/** One banger boot: `vm create` of a fresh VM, from its QEMU's start to the CLI's return; then its guest split. */
async function bangerSample(i: number): Promise<{ ms: number; split: GuestSplit }> {
  const name = `coldboot-${i}`;
  current = [name];
  let done = false;
  const watch = watchQemuStart(`${HOME}/state/`, () => done);
  const child = spawn(BANGER, ['vm', 'create', '--name', name], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const end = epochMs();
  done = true;
  if (VERBOSE) process.stderr.write(stderr);
  if (code !== 0) throw new Error(`banger vm create --name ${name} exited ${code}:\n${stderr}`);
  const started = await watch;
  if (!started) throw new Error(`did not see the QEMU process of ${name} start`);
  const split = guestSplit(name);
  banger(['vm', 'delete', name]);
  current = [];
  return { ms: end - started.start, split };
}

interface FloorSetup {
  argv: string[];
  qemu: string;
  pidFile: string;
  serialLog: string;
}

/** The floor: banger's QEMU argv for this VM shape, with an initramfs that powers off at once. */
function floorSetup(vm: VmInfo, kernelFile: string, qemu: string, baseImage: string, label: string): FloorSetup {
  const dir = path.join(HOME, `floor-${label}`);
  fs.mkdirSync(dir, { recursive: true });
  const init = `#!/bin/busybox sh\n/bin/busybox echo ${FLOOR_MARKER}\n/bin/busybox poweroff -f\n`;
  const cpio = writeCpio([
    { path: 'bin', mode: S_IFDIR | 0o755 },
    { path: 'dev', mode: S_IFDIR | 0o755 },
    { path: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
    { path: 'bin/busybox', mode: S_IFREG | 0o755, data: fs.readFileSync('/bin/busybox') },
    { path: 'init', mode: S_IFREG | 0o755, data: Buffer.from(init) },
  ]);
  const initrd = path.join(dir, 'floor.img');
  fs.writeFileSync(initrd, gzipSync(cpio, { level: 6 }));
  // The same devices as banger's VM: its two disks (never read: the floor loads no drivers) and a tap.
  const root = path.join(dir, 'root.qcow2');
  const work = path.join(dir, 'work.ext4');
  sh('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', baseImage, '-F', 'raw', root]);
  fs.writeFileSync(work, '');
  fs.truncateSync(work, 64 * 1024 * 1024);
  const tap = `bgtfloor${label}`;
  sh('ip', ['-n', NETNS, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  const pidFile = path.join(dir, 'qemu.pid');
  const serialLog = path.join(dir, 'serial.log');
  const accel = vm.accel === 'kvm' ? 'kvm' : 'tcg';
  const argv = buildQemuArgv({
    vmId: 'coldboot-floor', accel, vcpus: vm.vcpus, memoryMib: vm.memoryMib, kernelPath: kernelFile, initrdPath: initrd,
    cmdline: guestCmdline({ accel, tscKhz: hostTscKhz() }),
    disks: [{ id: 'root', path: root, format: 'qcow2' }, { id: 'work', path: work, format: 'raw' }],
    net: { tap, mac: '52:54:00:00:00:fe' },
    qmpSocket: path.join(dir, 'qmp.sock'), agentSocket: path.join(dir, 'agent.sock'), serialLog, pidFile,
  });
  return { argv, qemu, pidFile, serialLog };
}

/** One floor boot: from its QEMU's start to its exit. */
async function floorSample(f: FloorSetup): Promise<number> {
  fs.rmSync(f.pidFile, { force: true });
  sh('ip', ['netns', 'exec', NETNS, f.qemu, ...f.argv]);
  const pid = Number(fs.readFileSync(f.pidFile, 'utf8').trim());
  const start = processStartMs(pid);
  if (start === null) throw new Error('the floor QEMU exited before its start time could be read');
  const deadline = Date.now() + 120_000;
  while (isRunning(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGKILL');
      throw new Error(`the floor guest did not power off within 120 s (console: ${f.serialLog})`);
    }
    await sleep(10);
  }
  const ms = epochMs() - start;
  if (!fs.readFileSync(f.serialLog, 'utf8').includes(FLOOR_MARKER)) throw new Error(`the floor guest never ran its /init (console: ${f.serialLog})`);
  return ms;
}

const s = (ms: number): string => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  log(`bench/coldboot: boot to ssh (banger vm create) vs. the kernel's floor; netns ${NETNS}, ${ITERATIONS} iteration(s), load ${loadavg()}`);
  note('warm-up: vm create (builds the image and kernel, decides KVM or TCG; not timed)');
  current = ['coldboot-warm'];
  banger(['vm', 'create', '--name', 'coldboot-warm']);
  const vm = JSON.parse(banger(['vm', 'show', 'coldboot-warm', '--json'])) as VmInfo;
  const kernel = (JSON.parse(banger(['kernel', 'list', '--json'])) as KernelInfo[]).find((k) => k.id === vm.kernel);
  const argv = vm.pid ? cmdlineOf(vm.pid) : null;
  const qemu = argv?.[0];
  // The floor boots exactly the file banger's QEMU booted (-kernel), which may be the PVH vmlinux kept beside the
  // kernel's bzImage; the bzImage itself is booted too, for reference, when it differs.
  const booted = argv ? argv[argv.indexOf('-kernel') + 1] : undefined;
  const image = (JSON.parse(banger(['image', 'list', '--json'])) as ImageInfo[]).find((i) => i.name === vm.image);
  if (!kernel || !qemu || !image || !booted) throw new Error('could not read the warm-up VM\'s kernel, image or QEMU binary');
  banger(['vm', 'delete', 'coldboot-warm']);
  current = [];
  log(`spec: ${vm.vcpus} vCPU, ${vm.memoryMib} MiB, accel ${vm.accel}, kernel ${kernel.id} (boots ${path.basename(booted)}), image ${vm.image}, ${qemu}`);
  const floor = floorSetup(vm, booted, qemu, image.path, '0');
  const reference = booted !== kernel.kernelPath ? floorSetup(vm, kernel.kernelPath, qemu, image.path, '1') : null;
  const references: number[] = [];

  const floors: number[] = [];
  const boots: number[] = [];
  const splits: GuestSplit[] = [];
  for (let i = 1; i <= ITERATIONS; i++) {
    for (const kind of i % 2 === 1 ? ['banger', 'floor'] : ['floor', 'banger']) {
      if (kind === 'floor') {
        const ms = await floorSample(floor);
        floors.push(ms);
        log(`#${i} floor   ${s(ms).padStart(6)} s  (QEMU start to exit, ${path.basename(booted)})`);
        if (reference) {
          const ref = await floorSample(reference);
          references.push(ref);
          log(`#${i} floor   ${s(ref).padStart(6)} s  (QEMU start to exit, ${path.basename(kernel.kernelPath)}: reference only)`);
        }
      } else {
        const { ms, split } = await bangerSample(i);
        boots.push(ms);
        splits.push(split);
        log(`#${i} banger  ${s(ms).padStart(6)} s  (QEMU start to vm create's return)  guest: kernel+initrd ${split.kernelS.toFixed(2)} s, ssh.service active at +${split.sshActiveS.toFixed(2)} s, boot finished at +${split.userspaceS.toFixed(2)} s of userspace`);
      }
    }
  }
  const mb = median(boots);
  const mf = median(floors);
  const ratio = mb / mf;
  log('');
  log(`floor (kernel + 1 MB initramfs, poweroff): median ${s(mf)} s, booting ${path.basename(booted)} as banger does`);
  if (reference) log(`  reference floor booting ${path.basename(kernel.kernelPath)} (the bzImage, as the issue measured): median ${s(median(references))} s; banger/that = ${(mb / median(references)).toFixed(2)} (not the goal's ratio)`);
  log(`banger boot to ssh:                       median ${s(mb)} s  (guest medians: kernel+initrd ${median(splits.map((x) => x.kernelS)).toFixed(2)} s, ssh.service at +${median(splits.map((x) => x.sshActiveS)).toFixed(2)} s, finished at +${median(splits.map((x) => x.userspaceS)).toFixed(2)} s)`);
  log(`ratio banger/floor = ${ratio.toFixed(2)} (goal <= ${GOAL}: ${ratio <= GOAL ? 'met' : 'NOT met'}; accel ${vm.accel}; load ${loadavg()})`);
}

await bench.run(main);
