// Parallel-create benchmark: wall time of `banger vm create` for three VMs started at once, against one VM
// created alone, in the same run (pairs in ABBA order, each VM deleted after its sample). Per-VM locks mean
// different VMs progress in parallel, so the ratio should be well under 3; on a host with fewer cores than
// guests, TCG guests share CPUs, so the ratio also shows how much boots contend. Prints the ratio of the
// medians; never fails on it.
//
// Like bench/boot: a fresh BANGER_HOME under /var/tmp (removed at the end) unless BANGER_BENCH_HOME is set, so
// the warm-up meets banger as a new user does; every bridge, tap and VM in a network namespace this script
// creates and deletes. On exit, error or Ctrl-C it deletes its VMs, kills its own QEMU processes, stops the
// daemons of its BANGER_HOME and deletes the namespace.
//
// Environment: BANGER_BENCH_HOME, BENCH_ITERATIONS (default 2 pairs), BENCH_VERBOSE=1.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
const BANGER = path.join(REPO_ROOT, 'bin', 'banger');
const KEEP_HOME = Boolean(process.env.BANGER_BENCH_HOME);
const HOME = KEEP_HOME ? path.resolve(process.env.BANGER_BENCH_HOME!) : fs.mkdtempSync('/var/tmp/banger-bench-par-');
const NETNS = `banger-bench-par-${process.pid}`;
const ENV: NodeJS.ProcessEnv = { ...process.env, BANGER_HOME: HOME, BANGER_NETNS: NETNS };
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const PARALLEL = 3;
const GOAL = 2.0;
const NAMES = Array.from({ length: PARALLEL }, (_, i) => `bench-par-${i}`);

function note(text: string): void {
  process.stderr.write(`bench/parallel: ${text}\n`);
}

function bangerSync(args: string[]): void {
  const r = spawnSync(BANGER, args, { env: ENV, encoding: 'utf8', timeout: 20 * 60_000 });
  if (VERBOSE) process.stderr.write(r.stderr);
  if (r.status !== 0) throw new Error(`banger ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
}

function create(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    const child = spawn(BANGER, ['vm', 'create', '--name', name], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => {
      if (VERBOSE) process.stderr.write(stderr);
      if (code === 0) resolve();
      else reject(new Error(`banger vm create --name ${name} exited ${code}:\n${stderr}`));
    });
  });
}

/** Wall time of creating `names` at once (each waits for ssh, as vm create does), then deletes them. */
async function sample(names: string[]): Promise<number> {
  const start = performance.now();
  await Promise.all(names.map(create));
  const ms = performance.now() - start;
  bangerSync(['vm', 'delete', ...names]);
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function cleanup(): void {
  spawnSync(BANGER, ['vm', 'delete', ...NAMES], { env: ENV, encoding: 'utf8', timeout: 120_000 });
  spawnSync(BANGER, ['daemon', 'stop'], { env: ENV, encoding: 'utf8', timeout: 60_000 });
  const pids = spawnSync('pgrep', ['-f', `qemu-system.*${HOME}/`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  spawnSync('ip', ['netns', 'del', NETNS]);
  if (!KEEP_HOME) fs.rmSync(HOME, { recursive: true, force: true });
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (network namespace, bridge, taps): sudo bash bench/parallel');
  const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${NETNS}: ${add.stderr}`);
  note(`host: ${os.cpus().length} CPUs; warm-up: vm run --rm -- true (builds the image and kernel in a fresh BANGER_HOME)`);
  bangerSync(['vm', 'run', '--rm', '--', 'true']);
  const one: number[] = [];
  const many: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    for (const kind of i % 2 === 0 ? ['one', 'many'] : ['many', 'one']) {
      const ms = await sample(kind === 'one' ? NAMES.slice(0, 1) : NAMES);
      (kind === 'one' ? one : many).push(ms);
      note(`${kind === 'one' ? 'one VM         ' : `${PARALLEL} VMs at once`} ${(ms / 1000).toFixed(2)} s`);
    }
  }
  const ratio = median(many) / median(one);
  process.stdout.write([
    `vm create, one VM:          median ${(median(one) / 1000).toFixed(2)} s (${one.length} runs)`,
    `vm create, ${PARALLEL} VMs at once: median ${(median(many) / 1000).toFixed(2)} s (${many.length} runs)`,
    `ratio ${ratio.toFixed(2)} (goal <= ${GOAL}, well under ${PARALLEL}: ${ratio <= GOAL ? 'met' : 'NOT met'}; ${os.cpus().length} host CPUs)`,
    '',
  ].join('\n'));
}

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
  await main();
} finally {
  cleanup();
}
