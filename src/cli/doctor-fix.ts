// `banger doctor --fix`: the fixes that are safe to run unattended. Installing missing Debian packages (as root;
// otherwise it prints the command), creating banger's directories, and removing sockets nothing answers on. Each
// says what it did; a fix that fails says so and leaves the row for the next check to report.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { DoctorCheck } from '../protocol/doctor.ts';
import { messageOf } from '../protocol/errors.ts';
import type { Output } from './output.ts';

/** Runs a program with its output on stderr (apt-get's progress); resolves its exit status. */
export type FixRunner = (command: string, args: string[], env?: NodeJS.ProcessEnv) => Promise<number>;

const spawnToStderr: FixRunner = (command, args, env) =>
  new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', process.stderr, process.stderr], env: { ...process.env, ...env } });
    child.on('error', () => resolve(127));
    child.on('close', (code) => resolve(code ?? 1));
  });

const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive' };

export async function applySafeFixes(checks: DoctorCheck[], options: { output: Output; runner?: FixRunner; uid: number }): Promise<string[]> {
  const run = options.runner ?? spawnToStderr;
  const done: string[] = [];
  const packages = [...new Set(checks.flatMap((c) => (c.safeFix?.kind === 'apt-install' ? c.safeFix.packages : [])))];
  if (packages.length > 0) {
    const args = ['install', '-y', '-q', '--no-install-recommends', ...packages];
    if (options.uid !== 0) done.push(`installing packages needs root; run: sudo apt-get ${args.join(' ')}`);
    else {
      // A fresh machine may have no package lists yet: update once and try again.
      let status = await run('apt-get', args, APT_ENV);
      if (status !== 0 && (await run('apt-get', ['update', '-q'], APT_ENV)) === 0) status = await run('apt-get', args, APT_ENV);
      done.push(status === 0 ? `installed ${packages.join(' ')} (apt-get install)` : `apt-get install ${packages.join(' ')} failed (exit ${status}); see its output above`);
    }
  }
  for (const check of checks) {
    const fix = check.safeFix;
    try {
      if (fix?.kind === 'mkdir') {
        for (const dir of fix.paths) fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
        done.push(`created ${fix.paths.join(', ')}`);
      } else if (fix?.kind === 'remove-stale-socket') {
        // Only a socket: never a file that took its place since the check.
        if (fs.lstatSync(fix.path).isSocket()) {
          fs.rmSync(fix.path);
          done.push(`removed the stale socket ${fix.path}`);
        }
      }
    } catch (err) {
      done.push(`could not fix ${check.id}: ${messageOf(err)}`);
    }
  }
  return done;
}
