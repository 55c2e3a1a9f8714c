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
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { BANGER, benchHome, median } from './bench-home.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 2);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const PARALLEL = 3;
const GOAL = 2.0;
const NAMES = Array.from({ length: PARALLEL }, (_, i) => `bench-par-${i}`);
const bench = benchHome('parallel', () => NAMES);
const { env: ENV, note } = bench;

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

async function main(): Promise<void> {
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

await bench.run(main);
