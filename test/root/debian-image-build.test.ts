// The image hand-over for real: root gives the finished image to another user (uid 65534) through setpriv,
// which needs root: the root tier (scripts/test-e2e.sh). The rest of the build is in test/unit.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { handOver } from '../../src/helper/debian-image-build.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import type { FakeCall, FakeProcessRunner } from '../fakes/fake-process-runner.ts';
import { MIB, buildImage, fakeImageBuildRunner, imageBuildDirs, type ImageBuildDirs } from '../fakes/fake-image-build.ts';

const OWNER = { uid: 65534, gid: 65534 };
/** The hand-over runs for real: it is what keeps root's rights out of the owner's directory. */
const real = new NodeProcessRunner();
const runForReal = (call: FakeCall) => real.run(call.command, call.args, call.options);

describe('buildDebianImage', () => {
  let dirs: ImageBuildDirs;
  let dir: string;
  let cache: string;
  let runner: FakeProcessRunner;

  before(() => {
    dirs = imageBuildDirs(OWNER);
    ({ dir, cache } = dirs);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(() => {
    for (const f of fs.readdirSync(cache)) fs.rmSync(path.join(cache, f), { recursive: true, force: true });
    runner = fakeImageBuildRunner(runForReal);
  });

  const build = (output: string, overrides: { keyring?: string } = {}) =>
    buildImage({ runner, dirs, owner: OWNER, output, ...(overrides.keyring === undefined ? {} : { keyring: overrides.keyring }) });

  it("hands over an identical, sparse file that is the owner's", async () => {
    const output = path.join(cache, 'rootfs.ext4');
    await build(output);
    const data = fs.readFileSync(output);
    assert.equal(data.length, 8 * MIB);
    assert.ok(data.subarray(0, MIB).every((b) => b === 1));
    assert.ok(data.subarray(MIB, 7 * MIB).every((b) => b === 0));
    assert.ok(data.subarray(7 * MIB).every((b) => b === 2));
    const st = fs.statSync(output);
    assert.equal(st.uid, OWNER.uid);
    assert.equal(runner.calls.some((c) => c.command === 'setpriv'), true);
    assert.ok(st.blocks * 512 <= 3 * MIB, `the copy is not sparse (${st.blocks * 512} bytes allocated)`);
  });

  it('writes through a symlink the owner left at the partial file only as the owner', async () => {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'root file', { mode: 0o644 });
    const output = path.join(cache, 'rootfs.ext4');
    fs.symlinkSync(victim, `${output}.partial`);
    await build(output);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'root file');
    assert.equal(fs.lstatSync(output).isFile(), true);
  });
});

describe('handOver', () => {
  it("fails, writing nothing, where the owner may not write", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-handover-'));
    try {
      fs.chmodSync(dir, 0o755);
      const source = path.join(dir, 'source');
      fs.writeFileSync(source, 'image');
      // Root may write here; the owner may not. A hand-over that wrote as root would succeed.
      const rootsDir = path.join(dir, 'roots');
      fs.mkdirSync(rootsDir, { mode: 0o755 });
      await assert.rejects(handOver(real, source, path.join(rootsDir, 'rootfs.ext4'), OWNER, new AbortController().signal), /Permission denied|EACCES/);
      assert.deepEqual(fs.readdirSync(rootsDir), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
