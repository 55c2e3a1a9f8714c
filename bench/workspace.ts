// Workspace benchmark: `banger vm run --rm PATH -- true` against `banger vm run --rm -- true` in the same run, for
// a generated repository of 2,000 files and about 50 MiB of history, and the wall time of shipping alone
// (`vm workspace prepare` into a running VM). Prints the ratio of the medians (goal ≤ 1.2); never fails on it.
//
// Like bench/boot: a fresh BANGER_HOME under /var/tmp (removed at the end) unless BANGER_BENCH_HOME is set, so
// the warm-up meets banger as a new user does; every bridge, tap and VM in a network namespace this script
// creates and deletes. On exit, error or Ctrl-C it deletes its VMs, kills its own QEMU processes, stops the
// daemons of its BANGER_HOME and deletes the namespace.
//
// Environment: BANGER_BENCH_HOME, BENCH_ITERATIONS (default 3 pairs, in ABBA order), BENCH_VERBOSE=1.
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { BANGER, benchHome, median } from './bench-home.ts';

const bench = benchHome('workspace', () => ['bench-ship']);
const { home: HOME, env: ENV, note } = bench;
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 3);
const VERBOSE = process.env.BENCH_VERBOSE === '1';
const GOAL = 1.2;
const FILES = 2000;
const COMMITS = 200;
/** Files each commit rewrites with fresh random bytes: 200 × 25 × 10 KiB is about 50 MiB of history git cannot compress. */
const FILES_PER_COMMIT = 25;
const CHANGE_BYTES = 10 * 1024;
const TEST_REPO = path.join(HOME, 'bench-repo');

function banger(args: string[], options: { check?: boolean } = {}): { code: number | null; stdout: string; stderr: string; ms: number } {
  const start = performance.now();
  const r = spawnSync(BANGER, args, { env: ENV, encoding: 'utf8', timeout: 20 * 60_000 });
  const ms = performance.now() - start;
  if (VERBOSE) process.stderr.write(r.stderr);
  if ((options.check ?? true) && r.status !== 0) throw new Error(`banger ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, ms };
}

function git(args: string[], input?: string): string {
  const r = spawnSync('git', ['-C', TEST_REPO, ...args], { encoding: 'utf8', input, maxBuffer: 1024 ** 3 });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** 2,000 files in 20 directories, then COMMITS commits of incompressible changes, with git fast-import (seconds, not minutes). */
function generateRepo(): void {
  fs.rmSync(TEST_REPO, { recursive: true, force: true });
  fs.mkdirSync(TEST_REPO, { recursive: true });
  git(['init', '-q', '-b', 'main']);
  const name = (i: number): string => `dir${String(i % 20).padStart(2, '0')}/file${String(i).padStart(4, '0')}.txt`;
  const chunks: Buffer[] = [];
  const push = (s: string | Buffer): void => void chunks.push(typeof s === 'string' ? Buffer.from(s) : s);
  const data = (content: Buffer): void => {
    push(`data ${content.length}\n`);
    push(content);
    push('\n');
  };
  for (let c = 0; c < COMMITS; c++) {
    push(`commit refs/heads/main\ncommitter Bench <bench@example.org> ${1_700_000_000 + c} +0000\n`);
    data(Buffer.from(`commit ${c}\n`));
    if (c === 0) {
      for (let i = 0; i < FILES; i++) {
        push(`M 100644 inline ${name(i)}\n`);
        data(Buffer.from(`file ${i}\n${'line of text\n'.repeat(64)}`));
      }
    } else {
      for (let k = 0; k < FILES_PER_COMMIT; k++) {
        push(`M 100644 inline ${name((c * FILES_PER_COMMIT + k) % FILES)}\n`);
        data(crypto.randomBytes(CHANGE_BYTES));
      }
    }
    push('\n');
  }
  const r = spawnSync('git', ['-C', TEST_REPO, 'fast-import', '--quiet'], { input: Buffer.concat(chunks), maxBuffer: 1024 ** 3 });
  if (r.status !== 0) throw new Error(`git fast-import: ${r.stderr.toString()}`);
  git(['checkout', '-q', '-f', 'main']);
  git(['gc', '-q']);
  const du = spawnSync('du', ['-s', '-B1', path.join(TEST_REPO, '.git')], { encoding: 'utf8' }).stdout.split('\t')[0];
  note(`generated ${FILES} files and ${COMMITS} commits (.git ${Math.round(Number(du) / 1024 ** 2)} MiB)`);
}

function main(): void {
  generateRepo();
  note('warm-up: vm run --rm -- true (builds the image and kernel in a fresh BANGER_HOME)');
  note(`warm-up took ${(banger(['vm', 'run', '--rm', '--', 'true']).ms / 1000).toFixed(1)} s`);
  const withRepo: number[] = [];
  const without: number[] = [];
  const pair = (first: 'repo' | 'plain'): void => {
    for (const kind of first === 'repo' ? ['repo', 'plain'] : ['plain', 'repo']) {
      const ms = kind === 'repo' ? banger(['vm', 'run', '--rm', TEST_REPO, '--', 'true']).ms : banger(['vm', 'run', '--rm', '--', 'true']).ms;
      (kind === 'repo' ? withRepo : without).push(ms);
      note(`${kind === 'repo' ? 'vm run --rm PATH -- true' : 'vm run --rm -- true     '} ${(ms / 1000).toFixed(2)} s`);
    }
  };
  for (let i = 0; i < ITERATIONS; i++) pair(i % 2 === 0 ? 'repo' : 'plain');
  note('shipping alone: vm workspace prepare into one running VM, removing /root/repo between runs');
  banger(['vm', 'create', '--name', 'bench-ship']);
  const ship: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const r = banger(['vm', 'workspace', 'prepare', 'bench-ship', TEST_REPO]);
    ship.push(r.ms);
    note(`vm workspace prepare ${(r.ms / 1000).toFixed(2)} s`);
    banger(['vm', 'exec', 'bench-ship', '--', 'rm', '-rf', '/root/repo']);
  }
  banger(['vm', 'delete', 'bench-ship']);
  const ratio = median(withRepo) / median(without);
  process.stdout.write([
    `vm run --rm PATH -- true: median ${(median(withRepo) / 1000).toFixed(2)} s (${withRepo.length} runs)`,
    `vm run --rm -- true:      median ${(median(without) / 1000).toFixed(2)} s (${without.length} runs)`,
    `shipping alone (vm workspace prepare): median ${(median(ship) / 1000).toFixed(2)} s`,
    `ratio ${ratio.toFixed(2)} (goal <= ${GOAL}: ${ratio <= GOAL ? 'met' : 'NOT met'})`,
    '',
  ].join('\n'));
}

await bench.run(main);
