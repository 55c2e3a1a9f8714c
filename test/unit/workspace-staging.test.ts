// Where checkouts are built on the host: in memory when they fit with room to spare, on disk otherwise, and
// directories left by a daemon that died removed by the next one (never those of a daemon still running).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { makeStagingDir, MEMORY_STAGING_MAX, sweepStagingDirs } from '../../src/daemon/services/workspace-staging.ts';
import type { WorkspacePlan } from '../../src/system/workspace-plan.ts';

describe('workspace staging directories', () => {
  let dir: string;
  let dirs: { memory: string; disk: string };
  let root: string;
  const plan = (files: string[]): WorkspacePlan => ({ root, files } as unknown as WorkspacePlan);

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-staging-'));
    dirs = { memory: path.join(dir, 'shm'), disk: path.join(dir, 'disk') };
    fs.mkdirSync(dirs.memory);
    root = path.join(dir, 'repo');
    fs.mkdirSync(root);
  });

  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('builds a small checkout in memory, in a private directory named after the daemon, removed on request', () => {
    fs.writeFileSync(path.join(root, 'a.txt'), 'a\n');
    const s = makeStagingDir(plan(['a.txt', 'listed-but-gone.txt']), dirs, 4242);
    assert.equal(s.inMemory, true);
    assert.equal(path.dirname(s.dir), dirs.memory);
    assert.match(path.basename(s.dir), /^banger-stage-4242-/);
    assert.equal(fs.statSync(s.dir).mode & 0o777, 0o700);
    s.remove();
    assert.ok(!fs.existsSync(s.dir));
  });

  it('builds on disk what would not fit in memory with room to spare, and everything when there is no memory dir', () => {
    // Sparse: its size counts, its blocks cost nothing.
    fs.writeFileSync(path.join(root, 'big.bin'), '');
    fs.truncateSync(path.join(root, 'big.bin'), MEMORY_STAGING_MAX);
    const big = makeStagingDir(plan(['big.bin']), dirs);
    assert.equal(big.inMemory, false);
    assert.equal(path.dirname(big.dir), dirs.disk);
    const none = makeStagingDir(plan([]), { memory: null, disk: dirs.disk });
    assert.equal(none.inMemory, false);
  });

  it('removes the directories of daemons that are gone, and only those', () => {
    const gone = makeStagingDir(plan([]), dirs, 111);
    const live = makeStagingDir(plan([]), dirs, 222);
    const other = path.join(dirs.memory, 'not-banger');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(gone.dir, 'file'), 'x');
    const removed = sweepStagingDirs(dirs, (pid) => pid === 222);
    assert.deepEqual(removed, [gone.dir]);
    assert.ok(fs.existsSync(live.dir));
    assert.ok(fs.existsSync(other));
  });
});
