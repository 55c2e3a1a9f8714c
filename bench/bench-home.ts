// What the VM-booting benchmarks share: a fresh BANGER_HOME under /var/tmp (removed at the end) unless
// BANGER_BENCH_HOME is set, a network namespace the benchmark creates for every bridge, tap and VM, and a
// cleanup that runs on exit, error or Ctrl-C: the named VMs deleted, the home's daemons stopped, its own QEMU
// processes killed, the namespace deleted. A home without a config.toml gets one with bangerd's DNS server off.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BANGER = path.join(fileURLToPath(new URL('..', import.meta.url)), 'bin', 'banger');

export interface BenchHome {
  home: string;
  netns: string;
  env: NodeJS.ProcessEnv;
  /** Prints `bench/NAME: text` on stderr. */
  note(text: string): void;
  /** Creates the namespace, runs `main`, and cleans up however it ends. */
  run(main: () => void | Promise<void>): Promise<void>;
}

export function benchHome(name: string, vmNames: () => string[]): BenchHome {
  const keep = Boolean(process.env.BANGER_BENCH_HOME);
  const home = keep ? path.resolve(process.env.BANGER_BENCH_HOME!) : fs.mkdtempSync(`/var/tmp/banger-bench-${name}-`);
  const netns = `banger-bench-${name}-${process.pid}`;
  const env: NodeJS.ProcessEnv = { ...process.env, BANGER_HOME: home, BANGER_NETNS: netns };
  const note = (text: string): void => void process.stderr.write(`bench/${name}: ${text}\n`);
  const cleanup = (): void => {
    const names = vmNames();
    if (names.length > 0) spawnSync(BANGER, ['vm', 'delete', ...names], { env, encoding: 'utf8', timeout: 120_000 });
    spawnSync(BANGER, ['daemon', 'stop'], { env, encoding: 'utf8', timeout: 60_000 });
    const pids = spawnSync('pgrep', ['-f', `qemu-system.*${home}/`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    for (const pid of pids) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    spawnSync('ip', ['netns', 'del', netns]);
    if (!keep) fs.rmSync(home, { recursive: true, force: true });
  };
  return {
    home, netns, env, note,
    run: async (main) => {
      let exiting = false;
      for (const sig of ['SIGINT', 'SIGTERM'] as const) {
        process.on(sig, () => {
          if (exiting) return;
          exiting = true;
          note(`${sig}: cleaning up`);
          cleanup();
          process.exit(130);
        });
      }
      try {
        if (process.getuid?.() !== 0) throw new Error(`needs root (network namespace, bridge, taps): sudo bash bench/${name}`);
        // bangerd's DNS server listens on the host's loopback; a benchmark has no use for it.
        const config = path.join(home, 'config', 'config.toml');
        if (!fs.existsSync(config)) {
          fs.mkdirSync(path.dirname(config), { recursive: true });
          fs.writeFileSync(config, '[dns]\nport = 0\n');
        }
        const add = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
        if (add.status !== 0) throw new Error(`ip netns add ${netns}: ${add.stderr}`);
        await main();
      } finally {
        cleanup();
      }
    },
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
