// The work disk with real mkfs.ext4 (no root, no mount: debugfs reads the image): made empty or with a seed's
// files, owners and modes kept, and a seed too big for the disk refused with what to do.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { makeWorkDisk } from '../../src/vmm/work-disk.ts';
import { fails } from '../fakes/expect-error.ts';

const runner = new NodeProcessRunner();
const debugfs = (image: string, request: string): string => spawnSync('debugfs', ['-R', request, image], { encoding: 'utf8' }).stdout;

describe('work disk', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-workdisk-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('is made with the seed: files, symlinks and modes as they are', async () => {
    const seed = path.join(dir, 'seed');
    fs.mkdirSync(path.join(seed, 'repo', '.git'), { recursive: true });
    fs.writeFileSync(path.join(seed, 'repo', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
    fs.symlinkSync('/etc/passwd', path.join(seed, 'repo', 'link'));
    const image = path.join(dir, 'work.ext4');
    await makeWorkDisk(runner, image, { baseImage: '', workDiskGib: 1, workDiskSeed: seed, signal: new AbortController().signal });
    assert.equal(fs.statSync(image).size, 1024 ** 3);
    const listing = debugfs(image, 'ls -l /repo');
    assert.match(listing, /100755 .* run\.sh/);
    assert.match(listing, /120777 .* link/);
    assert.match(debugfs(image, 'stat /repo/link'), /Fast link dest: "\/etc\/passwd"/);
  });

  it('refuses a seed that does not fit, naming --disk', async () => {
    const seed = path.join(dir, 'seed');
    fs.mkdirSync(seed);
    fs.writeFileSync(path.join(seed, 'big.bin'), Buffer.alloc(24 * 1024 ** 2, 1));
    const image = path.join(dir, 'work.ext4');
    const failed = makeWorkDisk(runner, image, { baseImage: '', workDiskGib: 16 / 1024, workDiskSeed: seed, signal: new AbortController().signal });
    await assert.rejects(failed, fails('WORKSPACE_FAILED', /does not fit in the .* GiB work disk/, { hint: true }));
    await assert.rejects(failed, (err: Error & { hint?: string }) => /--disk/.test(err.hint ?? ''));
  });
});
