// The steps of `banger update` that change the install: unpack a verified release beside the others, ask its
// bangerd whether it can use the store, swap `current` over to it (keeping `previous`), restart the daemons from
// it, let its doctor judge it, and roll all of that back when any step after the swap fails. Running VMs are
// separate processes: stopping and starting the daemons leaves them running, and the next bangerd finds them.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../protocol/errors.ts';
import type { DoctorReport } from '../protocol/doctor.ts';
import { stopDaemons } from '../sdk/autostart.ts';
import { releaseInfo, swapLink, type InstallLayout } from '../system/install-layout.ts';
import type { BangerPaths } from '../system/paths.ts';
import { isSocketAlive } from '../system/socket-server.ts';

/** How update runs programs of a release (tests may watch). */
export type RunProgram = (program: string, args: string[]) => { status: number | null; stdout: string; stderr: string };

export const runProgram: RunProgram = (program, args) => {
  const r = spawnSync(program, args, { encoding: 'utf8', env: process.env, timeout: 10 * 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.error ? r.error.message : (r.stderr ?? '') };
};

const tail = (text: string, lines = 6): string => text.trim().split('\n').slice(-lines).join('\n');

/**
 * Unpacks the verified tarball into `workDir` and returns the release directory in it, checked to be the one
 * release `version` and nothing else.
 */
export function unpackRelease(tarball: string, workDir: string, version: string, run: RunProgram = runProgram): string {
  const into = path.join(workDir, 'unpacked');
  fs.mkdirSync(into);
  const r = run('tar', ['--zstd', '-xf', tarball, '-C', into, '--no-same-owner', '--no-same-permissions', '--delay-directory-restore']);
  if (r.status !== 0) throw new BangerError('TOOL_FAILED', `tar --zstd -xf ${tarball} failed:\n${tail(r.stderr)}`, { hint: 'tar and zstd come from apt-get install tar zstd' });
  const entries = fs.readdirSync(into);
  const want = `banger-${version}`;
  if (entries.length !== 1 || entries[0] !== want || !fs.lstatSync(path.join(into, want)).isDirectory()) {
    throw new BangerError('RELEASE_INVALID', `the release tarball holds ${entries.join(', ') || 'nothing'}, not the one directory ${want}`, { hint: 'nothing was installed; report the release to its publisher' });
  }
  const dir = path.join(into, want);
  const info = releaseInfo(dir);
  if (info?.version !== version) throw new BangerError('RELEASE_INVALID', `${want} says it is version ${info?.version ?? 'unknown'}`, { hint: 'nothing was installed; report the release to its publisher' });
  return dir;
}

/** The staged bangerd's verdict on the live store: 0 current, 1 it will migrate it, 2 it cannot use it. */
export function stagedMigrationCheck(release: string, run: RunProgram = runProgram): { status: 0 | 1 | 2; message: string } {
  const r = run(path.join(release, 'bin', 'bangerd'), ['--check-migrations']);
  const message = (r.stdout.trim() || tail(r.stderr)).split('\n')[0] ?? '';
  if (r.status === 0 || r.status === 1 || r.status === 2) return { status: r.status, message };
  throw new BangerError('RELEASE_INVALID', `the new release's bangerd --check-migrations failed (exit ${r.status}): ${tail(r.stderr)}`, { hint: 'nothing was installed; report the release to its publisher' });
}

export interface SwapPlan {
  layout: InstallLayout;
  paths: BangerPaths;
  /** The verified release, unpacked (moved into versions/ by swapIn). */
  staged: string;
  version: string;
  /** Whether the store will be migrated: a copy is kept first, for a rollback. */
  migrates: boolean;
  workDir: string;
  log: (line: string) => void;
  run?: RunProgram;
}

/** What swapIn changed, for rollBack to undo. */
export interface Swapped {
  dest: string;
  oldCurrent: string;
  oldPrevious: string | null;
  daemonWasRunning: boolean;
  storeCopy: string | null;
}

/** Stops the daemons, keeps the store aside when it will be migrated, and points `current` at the new release. */
export async function swapIn(plan: SwapPlan): Promise<Swapped> {
  const { layout, paths } = plan;
  if (!layout.current) throw new BangerError('NOT_INSTALLED', `${layout.currentLink} does not point at a release`, { hint: `point it at the release this CLI belongs to: ln -sfn versions/VERSION ${layout.currentLink}` });
  const dest = path.join(layout.versionsDir, plan.version);
  // A directory left by an earlier try (or the release rolled back from) makes way for the one just verified.
  if (fs.existsSync(dest)) fs.renameSync(dest, path.join(plan.workDir, 'replaced'));
  fs.renameSync(plan.staged, dest);
  const daemonWasRunning = await isSocketAlive(paths.daemonSocket);
  const stopped = await stopDaemons(paths);
  if (stopped.length > 0) plan.log(`stopped ${stopped.join(' and ')} (running VMs keep running)`);
  let storeCopy: string | null = null;
  if (plan.migrates && fs.existsSync(paths.db)) {
    storeCopy = `${paths.db}.before-${plan.version}`;
    fs.copyFileSync(paths.db, storeCopy);
    plan.log(`the store will be migrated; a copy is kept in ${storeCopy}`);
  }
  const swapped: Swapped = { dest, oldCurrent: layout.current, oldPrevious: layout.previous, daemonWasRunning, storeCopy };
  swapLink(layout.currentLink, dest);
  swapLink(layout.previousLink, layout.current);
  return swapped;
}

/** Starts the daemons from the release `current` points at, then runs its doctor; throws what failed. */
export function proveNewRelease(plan: SwapPlan): void {
  const run = plan.run ?? runProgram;
  const banger = path.join(plan.layout.currentLink, 'bin', 'banger');
  const started = run(banger, ['daemon', 'start']);
  if (started.status !== 0) throw new Error(`the new release's daemons did not start (banger daemon start exited ${started.status}):\n${tail(started.stderr || started.stdout)}`);
  plan.log(started.stdout.trim());
  const doctor = run(banger, ['doctor', '--json']);
  let report: DoctorReport | null = null;
  try {
    report = JSON.parse(doctor.stdout) as DoctorReport;
  } catch {
    // Said below with its output.
  }
  if (doctor.status !== 0 || !report) {
    const failed = report?.checks.filter((c) => c.status === 'fail').map((c) => `${c.id}: ${c.summary}`) ?? [tail(doctor.stderr || doctor.stdout)];
    throw new Error(`the new release's doctor found failures:\n${failed.join('\n')}`);
  }
}

/** Undoes swapIn: the new release's daemons stop, the store copy goes back, `current` and `previous` are restored. */
export async function rollBack(plan: SwapPlan, swapped: Swapped): Promise<string[]> {
  const problems: string[] = [];
  const step = async (what: string, fn: () => unknown): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${messageOf(err)}`);
    }
  };
  await step('stopping the new daemons', () => stopDaemons(plan.paths));
  if (swapped.storeCopy) await step('restoring the store', () => {
    fs.copyFileSync(swapped.storeCopy!, plan.paths.db);
    for (const suffix of ['-wal', '-shm']) fs.rmSync(`${plan.paths.db}${suffix}`, { force: true });
  });
  await step('restoring current', () => swapLink(plan.layout.currentLink, swapped.oldCurrent));
  await step('restoring previous', () => (swapped.oldPrevious ? swapLink(plan.layout.previousLink, swapped.oldPrevious) : fs.rmSync(plan.layout.previousLink, { force: true })));
  // The failed release goes with the work directory; a later update verifies and unpacks it afresh.
  await step('removing the failed release', () => fs.renameSync(swapped.dest, path.join(plan.workDir, 'failed')));
  if (swapped.daemonWasRunning) {
    await step('starting the previous daemons', () => {
      const r = (plan.run ?? runProgram)(path.join(plan.layout.currentLink, 'bin', 'banger'), ['daemon', 'start']);
      if (r.status !== 0) throw new Error(tail(r.stderr || r.stdout));
    });
  }
  return problems;
}

/** After a good update: only `current` and `previous` stay in versions/. */
export function pruneVersions(layout: InstallLayout, keep: string[]): string[] {
  const removed: string[] = [];
  for (const name of fs.readdirSync(layout.versionsDir)) {
    const dir = path.join(layout.versionsDir, name);
    if (keep.some((k) => path.resolve(k) === dir)) continue;
    fs.rmSync(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
