// The image hand-over for real: root gives the finished image to another user (uid 65534) through setpriv,
// which needs root: the root tier (scripts/test-e2e.sh). The rest of the build is in test/unit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { handOver } from '../../src/helper/ext4-image.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import type { FakeCall, FakeHandler, FakeProcessRunner } from '../fakes/fake-process-runner.ts';
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

describe('a failed build', () => {
  /**
   * A build whose debootstrap bind-mounts a stand-in for the host's /dev into its tree and dies (a kill leaves the
   * mount behind), with `umount` answered by `umount`. Returns the build's runner, the stand-in and the work root.
   */
  async function failWithMountLeft(umount: FakeHandler, test: (r: { runner: FakeProcessRunner; host: string; tree: string; workRoot: string }) => void): Promise<void> {
    const dirs = imageBuildDirs(OWNER);
    const host = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-hostdev-'));
    fs.writeFileSync(path.join(host, 'sentinel'), 'host file');
    let tree = '';
    try {
      const runner = fakeImageBuildRunner(runForReal);
      runner.on('umount', umount);
      runner.on('debootstrap', ({ args }) => {
        tree = args.at(-2)!;
        fs.mkdirSync(path.join(tree, 'dev'), { recursive: true });
        const bind = spawnSync('mount', ['--bind', host, path.join(tree, 'dev')], { encoding: 'utf8' });
        assert.equal(bind.status, 0, bind.stderr);
        return { code: null, signal: 'SIGKILL' };
      });
      await assert.rejects(buildImage({ runner, dirs, owner: OWNER, output: path.join(dirs.cache, 'rootfs.ext4') }));
      assert.equal(fs.readFileSync(path.join(host, 'sentinel'), 'utf8'), 'host file', 'a file behind the mount was deleted');
      test({ runner, host, tree, workRoot: dirs.workRoot });
    } finally {
      if (tree) spawnSync('umount', ['--lazy', path.join(tree, 'dev')]);
      fs.rmSync(host, { recursive: true, force: true });
      fs.rmSync(dirs.dir, { recursive: true, force: true });
    }
  }

  it('unmounts what debootstrap left mounted in its tree before removing it, never deleting through a mount', async () => {
    await failWithMountLeft(runForReal, ({ runner, tree, workRoot }) => {
      assert.deepEqual(fs.readdirSync(workRoot), [], 'the build directory was not removed');
      assert.deepEqual(runner.callsTo('umount').map((c) => c.args), [['--lazy', path.join(tree, 'dev')]]);
    });
  });

  it('keeps the build directory when what is mounted in it cannot be unmounted', async () => {
    await failWithMountLeft(() => ({ code: 32, stderr: 'umount: target is busy' }), ({ workRoot }) => {
      assert.equal(fs.readdirSync(workRoot).length, 1, 'the build directory is kept while something is mounted in it');
    });
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
