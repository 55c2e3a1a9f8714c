// What every e2e file needs: a fresh BANGER_HOME, the real CLI run in it with BANGER_NETNS, the QEMU processes
// that belong to it, and the teardown that leaves nothing of it behind (the namespaces are each file's own).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

export const BANGER = path.join(path.resolve(import.meta.dirname, '../..'), 'bin/banger');

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface E2eBanger {
  home: string;
  env: NodeJS.ProcessEnv;
  /** Runs banger in this home and returns how it ended. */
  banger(args: string[], options?: { timeoutMs?: number }): Result;
  /** Runs banger and requires exit status 0. */
  ok(args: string[]): Result;
  /** `pgrep -a` lines of the QEMU processes that belong to this home. */
  vmmProcesses(): string[];
  /** Stops the daemons, kills this home's QEMU processes and removes the home (unless BANGER_E2E_KEEP). */
  teardown(): void;
}

/** A fresh BANGER_HOME named `prefix…` (under BANGER_E2E_DIR or /var/tmp) whose VMs live in `netns`. */
export function e2eBanger(prefix: string, netns: string): E2eBanger {
  const home = fs.mkdtempSync(path.join(process.env.BANGER_E2E_DIR ?? '/var/tmp', prefix));
  const env = { ...process.env, BANGER_HOME: home, BANGER_NETNS: netns };
  const banger = (args: string[], options: { timeoutMs?: number } = {}): Result => {
    const r = spawnSync(BANGER, args, { env, encoding: 'utf8', timeout: options.timeoutMs ?? 15 * 60_000 });
    if (r.error) throw r.error;
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const vmmProcesses = (): string[] => spawnSync('pgrep', ['-a', '-f', `qemu-system.*${home}`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
  return {
    home,
    env,
    banger,
    ok: (args) => {
      const r = banger(args);
      assert.equal(r.code, 0, `banger ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
      return r;
    },
    vmmProcesses,
    teardown: () => {
      spawnSync(BANGER, ['daemon', 'stop'], { env, encoding: 'utf8', timeout: 60_000 });
      for (const line of vmmProcesses()) {
        const pid = Number(line.split(' ')[0]);
        if (pid) process.kill(pid, 'SIGKILL');
      }
      if (!process.env.BANGER_E2E_KEEP) fs.rmSync(home, { recursive: true, force: true });
    },
  };
}
