// /proc readings the VM benchmarks share: a QEMU process's start time, its resident memory, its exit.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

/** Clock ticks per second of /proc's start times. */
const CLOCK_TICKS = 100;

/** Epoch milliseconds, the clock processStartMs answers on. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export function cmdlineOf(pid: number | string): string[] | null {
  try {
    const raw = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw === '' ? null : raw.replace(/\0$/, '').split('\0');
  } catch {
    return null;
  }
}

/** Whether `pid` still runs (a zombie does not). */
export function isRunning(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) [ZX]/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * When a process started (epoch ms, to a clock tick): its start in ticks since boot (/proc/PID/stat) set against
 * the uptime read now (/proc/uptime). /proc/stat's btime would do too, but it is whole seconds.
 */
export function processStartMs(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const startedTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const uptimeS = Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return epochMs() - (uptimeS - startedTicks / CLOCK_TICKS) * 1000;
  } catch {
    return null;
  }
}

/** Running QEMU processes with `needle` in their command line (a VM's -name, or a file under a BANGER_HOME). */
export function qemuPids(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const argv = cmdlineOf(entry);
    if (!argv || !path.basename(argv[0]!).startsWith('qemu-system')) continue;
    if (argv.some((a) => a.includes(needle)) && isRunning(Number(entry))) pids.push(Number(entry));
  }
  return pids;
}

/**
 * Resident memory of a process in MiB: all of it (VmRSS), its private anonymous part (guest RAM, TCG's cache,
 * QEMU's heap), and file pages (binaries, and the kernel and initrd QEMU keeps mapped, shared through the page
 * cache with every VM that boots the same files). Null when it is gone.
 */
export function residentMib(pid: number): { rss: number; anon: number; file: number; pss: number } | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = (text: string, key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    // Pss: each shared page (the kernel file, QEMU's libraries) divided among the processes that map it.
    const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return { rss: kib(status, 'VmRSS') / 1024, anon: kib(status, 'RssAnon') / 1024, file: kib(status, 'RssFile') / 1024, pss: kib(rollup, 'Pss') / 1024 };
  } catch {
    return null;
  }
}

/** The host's load averages, to print beside timings taken on a shared machine. */
export function loadavg(): string {
  return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}
