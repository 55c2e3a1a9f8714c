// CLI round-trip benchmark: `banger vm list` with 100 VM records in the store and bangerd running, against
// `node -e 0` with the same Node binary, both measured in this run, alternating. Prints the ratio of the medians.
//
// It uses a fresh BANGER_HOME (deleted afterwards) and a network namespace it creates and deletes, so the daemons
// it starts touch nothing of the host's network. The 100 VMs are records only (state stopped): nothing boots.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Store } from '../src/store/store.ts';
import { resolvePaths } from '../src/system/paths.ts';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const BANGER = path.join(REPO, 'bin', 'banger');
const NODE = process.execPath;
const GOAL = 2.0;
const VMS = 100;

function parseIterations(): number {
  const raw = process.env.BENCH_ITERATIONS ?? '30';
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 3) throw new Error(`BENCH_ITERATIONS must be a whole number >= 3 (got ${JSON.stringify(raw)})`);
  return n;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Wall time of one run of `command`, which must exit 0. */
function timed(command: string, args: string[], env: NodeJS.ProcessEnv): { ms: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(command, args, { env, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status ?? r.signal}:\n${r.stderr}`);
  return { ms, stdout: r.stdout };
}

function seedVms(db: string): void {
  const store = new Store(db);
  try {
    for (let i = 0; i < VMS; i++) {
      const id = crypto.randomBytes(6).toString('hex');
      store.insertVm({
        id, name: `bench-${i}`, state: 'stopped', image: 'debian-bookworm', kernel: 'host-6.1.0-bench', vcpus: 1, memoryMib: 1024,
        diskGib: 8, ip: `172.30.0.${i + 2}`, mac: `52:54:00:${id.slice(6, 8)}:${id.slice(8, 10)}:${id.slice(10, 12)}`, tap: `bgt${id}`,
        accel: 'tcg', pid: null, createdAt: new Date().toISOString(), nat: false, workspace: null,
      });
    }
  } finally {
    store.close();
  }
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-bench-cli-'));
const netns = `banger-bcli-${process.pid}`;
const env: NodeJS.ProcessEnv = { ...process.env, BANGER_HOME: home, BANGER_NETNS: netns };
let netnsCreated = false;
let status = 0;
try {
  if (process.getuid?.() !== 0) throw new Error('must run as root (bangerd with a network namespace needs root)');
  const iterations = parseIterations();
  const add = spawnSync('ip', ['netns', 'add', netns], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`ip netns add ${netns}: ${add.stderr.trim()}`);
  netnsCreated = true;
  seedVms(resolvePaths(env).db);
  const started = spawnSync(BANGER, ['daemon', 'start'], { env, encoding: 'utf8' });
  if (started.status !== 0) throw new Error(`banger daemon start failed:\n${started.stderr}`);
  // One untimed round each, so both start from the same warm page cache.
  const listed = timed(BANGER, ['vm', 'list'], env).stdout.trim().split('\n');
  if (listed.length !== VMS + 1) throw new Error(`banger vm list printed ${listed.length - 1} VMs, expected ${VMS}`);
  timed(NODE, ['-e', '0'], env);
  const cli: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < iterations; i++) {
    // Alternating, so a drift over the run (host load) does not favour one side.
    if (i % 2 === 0) {
      cli.push(timed(BANGER, ['vm', 'list'], env).ms);
      bare.push(timed(NODE, ['-e', '0'], env).ms);
    } else {
      bare.push(timed(NODE, ['-e', '0'], env).ms);
      cli.push(timed(BANGER, ['vm', 'list'], env).ms);
    }
  }
  const mc = median(cli);
  const mb = median(bare);
  process.stdout.write(`bench/cli: banger vm list (${VMS} VMs, daemon running) vs node -e 0 (${NODE}), ${iterations} runs each\n`);
  process.stdout.write(`  banger vm list  median ${mc.toFixed(1)} ms (min ${Math.min(...cli).toFixed(1)}, max ${Math.max(...cli).toFixed(1)})\n`);
  process.stdout.write(`  node -e 0       median ${mb.toFixed(1)} ms (min ${Math.min(...bare).toFixed(1)}, max ${Math.max(...bare).toFixed(1)})\n`);
  const ratio = mc / mb;
  process.stdout.write(`ratio banger vm list / node -e 0 = ${ratio.toFixed(2)} (goal <= ${GOAL.toFixed(2)})${ratio <= GOAL ? '' : '  [above goal]'}\n`);
} catch (err) {
  process.stderr.write(`bench/cli: failed: ${err instanceof Error ? err.message : String(err)}\n`);
  status = 1;
} finally {
  spawnSync(BANGER, ['daemon', 'stop'], { env, encoding: 'utf8' });
  if (netnsCreated) {
    const del = spawnSync('ip', ['netns', 'del', netns], { encoding: 'utf8' });
    if (del.status !== 0) process.stderr.write(`bench/cli: WARNING: could not delete netns ${netns}: ${del.stderr.trim()}\n`);
  }
  fs.rmSync(home, { recursive: true, force: true });
}
process.exit(status);
