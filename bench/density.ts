// Density benchmark: N idle VMs (default 4) of the default size, booted and left idle 30 s; prints the QEMU
// processes' resident memory per VM (goal <= 150 MiB), and their proportional set (shared pages divided), with each
// guest's own used memory beside it. Then it
// times `banger vm stop` on each, right after a write in the guest (goal <= 2 s worst case), beside the CLI's own
// round trip to bangerd (`vm show`) measured in the same run. Never fails on the goals.
//
// Like the other VM benchmarks: a fresh BANGER_HOME under /var/tmp (removed at the end) unless BANGER_BENCH_HOME
// is set, so the first VM builds the image and kernel as a new user's first run does; every bridge, tap and VM
// lives in a network namespace this script creates and deletes.
//
// Environment: BANGER_BENCH_HOME, BENCH_VMS (default 4), BENCH_IDLE_S (default 30), BENCH_VERBOSE=1.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { BANGER, benchHome, median } from './bench-home.ts';
import { loadavg, residentMib } from './bench-proc.ts';
import type { VmInfo } from '../src/protocol/methods.ts';

const N = Number(process.env.BENCH_VMS ?? 4);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 30);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const GOAL_RSS_MIB = 150;
const GOAL_STOP_S = 2;
const NAMES = Array.from({ length: N }, (_, i) => `density-${i}`);
const bench = benchHome('density', () => NAMES);
const { env: ENV, note, netns: NETNS } = bench;

function log(text: string): void {
  process.stdout.write(`${text}\n`);
}

function banger(args: string[], timeoutMs = 20 * 60_000): { stdout: string; ms: number } {
  const start = performance.now();
  const r = spawnSync(BANGER, args, { env: ENV, encoding: 'utf8', timeout: timeoutMs });
  const ms = performance.now() - start;
  if (VERBOSE) process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`banger ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return { stdout: r.stdout, ms };
}

/** The guest's own view in MiB: used as `free -m` shows it (MemTotal - MemAvailable), and what is not free at all. */
function guestMemory(name: string): { usedMib: number; notFreeMib: number } {
  const out = banger(['vm', 'exec', name, '--', 'cat', '/proc/meminfo']).stdout;
  const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(out)?.[1] ?? NaN);
  return { usedMib: (kib('MemTotal') - kib('MemAvailable')) / 1024, notFreeMib: (kib('MemTotal') - kib('MemFree')) / 1024 };
}

const f1 = (n: number): string => n.toFixed(1);

async function main(): Promise<void> {
  log(`bench/density: ${N} idle VMs of the default size, ${IDLE_S} s idle after boot; netns ${NETNS}, load ${loadavg()}`);
  note(`creating ${N} VMs (the first builds the image and kernel)`);
  for (const name of NAMES) banger(['vm', 'create', '--name', name]);
  // Idle means booted: every unit started, then left alone.
  for (const name of NAMES) spawnSync(BANGER, ['vm', 'exec', name, '--', 'systemctl', 'is-system-running', '--wait'], { env: ENV, encoding: 'utf8', timeout: 5 * 60_000 });
  note(`all booted; idle for ${IDLE_S} s`);
  await new Promise((r) => setTimeout(r, IDLE_S * 1000));

  const vms = NAMES.map((name) => JSON.parse(banger(['vm', 'show', name, '--json']).stdout) as VmInfo);
  let total = 0;
  let anon = 0;
  let pss = 0;
  for (const vm of vms) {
    const mem = vm.pid ? residentMib(vm.pid) : null;
    if (mem === null) throw new Error(`VM ${vm.name} has no running QEMU`);
    total += mem.rss;
    anon += mem.anon;
    pss += mem.pss;
    const guest = guestMemory(vm.name);
    log(`  ${vm.name}: QEMU resident ${f1(mem.rss)} MiB (private ${f1(mem.anon)}, file pages ${f1(mem.file)}, proportional ${f1(mem.pss)}); in the guest: used ${f1(guest.usedMib)} MiB (as free -m shows it), not free ${f1(guest.notFreeMib)} MiB (with caches); ${vm.memoryMib} MiB, accel ${vm.accel}`);
  }
  const perVm = total / vms.length;
  log(`QEMU resident per idle VM: ${f1(perVm)} MiB (total ${f1(total)} MiB / ${vms.length}; goal <= ${GOAL_RSS_MIB}: ${perVm <= GOAL_RSS_MIB ? 'met' : 'NOT met'}); of it private: ${f1(anon / vms.length)} MiB; proportional set (shared pages divided among the VMs): ${f1(pss / vms.length)} MiB`);

  // vm stop right after a write: the agent syncs the guest, then QEMU quits; no guest shutdown.
  const stops: number[] = [];
  const trips: number[] = [];
  for (const name of NAMES) {
    banger(['vm', 'exec', name, '--', 'sh', '-c', 'head -c 8M /dev/urandom > /root/density-written']);
    trips.push(banger(['vm', 'show', name]).ms);
    const { ms } = banger(['vm', 'stop', name]);
    stops.push(ms);
    log(`  ${name}: vm stop ${(ms / 1000).toFixed(2)} s`);
  }
  const worst = Math.max(...stops) / 1000;
  log(`vm stop after a write: worst ${worst.toFixed(2)} s, median ${(median(stops) / 1000).toFixed(2)} s (goal <= ${GOAL_STOP_S} s worst: ${worst <= GOAL_STOP_S ? 'met' : 'NOT met'}); CLI round trip (vm show) median ${(median(trips) / 1000).toFixed(2)} s; load ${loadavg()}`);
}

await bench.run(main);
