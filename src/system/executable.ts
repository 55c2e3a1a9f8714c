import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';

/** The path of a program (absolute, or looked up on PATH), or MISSING_TOOL naming the package to install. */
export function findExecutable(name: string, searchPath = process.env.PATH ?? '/usr/bin:/bin'): string {
  const candidates = path.isAbsolute(name) ? [name] : searchPath.split(':').filter(Boolean).map((d) => path.join(d, name));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here; try the next directory.
    }
  }
  throw new BangerError('MISSING_TOOL', `${name} is not installed (not found${path.isAbsolute(name) ? '' : ' on PATH'})`, {
    hint: 'apt-get install qemu-system-x86 qemu-utils, or set vmm.qemu in config.toml',
  });
}

/** The first line `program --version` prints, or null when it does not run or fails within `timeoutMs`. */
export function versionLineOf(program: string, timeoutMs: number): string | null {
  const r = spawnSync(program, ['--version'], { encoding: 'utf8', timeout: timeoutMs });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? null) : null;
}
