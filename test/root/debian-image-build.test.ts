// The image hand-over for real: root gives the finished image to another user (uid 65534) through setpriv,
// which needs root: the root tier (scripts/test-e2e.sh). The rest of the build is in test/unit.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULT_IMAGES } from '../../src/protocol/image-recipes.ts';
import { buildDebianImage, handOver } from '../../src/helper/debian-image-build.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { FakeProcessRunner, type FakeCall } from '../fakes/fake-process-runner.ts';

const OWNER = { uid: 65534, gid: 65534 };
const MIB = 1024 * 1024;
/** The hand-over runs for real: it is what keeps root's rights out of the owner's directory. */
const real = new NodeProcessRunner();
const runForReal = (call: FakeCall) => real.run(call.command, call.args, call.options);

describe('buildDebianImage', () => {
  let dir: string;
  let workRoot: string;
  let cache: string;
  let keyring: string;
  let runner: FakeProcessRunner;
  const signal = new AbortController().signal;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-recipe-'));
    fs.chmodSync(dir, 0o755);
    workRoot = path.join(dir, 'build');
    fs.mkdirSync(workRoot, { mode: 0o700 });
    cache = path.join(dir, 'cache');
    fs.mkdirSync(cache);
    fs.chownSync(cache, OWNER.uid, OWNER.gid);
    keyring = path.join(dir, 'keyring.gpg');
    fs.writeFileSync(keyring, 'keys');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(() => {
    for (const f of fs.readdirSync(cache)) fs.rmSync(path.join(cache, f), { recursive: true, force: true });
    runner = new FakeProcessRunner();
    // debootstrap SUITE TARGET MIRROR: a tiny tree with what customizeRootfs expects to find.
    runner.on('debootstrap', ({ args }) => {
      const tree = args.at(-2)!;
      fs.mkdirSync(path.join(tree, 'etc/ssh'), { recursive: true });
      fs.writeFileSync(path.join(tree, 'etc/ssh/ssh_host_rsa_key'), 'baked-in key');
      fs.mkdirSync(path.join(tree, 'var/cache/apt/archives'), { recursive: true });
      return { code: 0 };
    });
    runner.on('du', () => ({ stdout: `${100 * MIB}\t/x\n` }));
    runner.on('setpriv', runForReal).on('cp', runForReal);
    // mkfs.ext4 ... IMAGE SIZE: an 8 MiB sparse file with data in its first and last MiB.
    runner.on('mkfs.ext4', ({ args }) => {
      const image = args.at(-2)!;
      const fd = fs.openSync(image, 'w');
      fs.writeSync(fd, Buffer.alloc(MIB, 1), 0, MIB, 0);
      fs.writeSync(fd, Buffer.alloc(MIB, 2), 0, MIB, 7 * MIB);
      fs.closeSync(fd);
      return { code: 0 };
    });
  });

  const build = (output: string, overrides: { keyring?: string } = {}) =>
    buildDebianImage({
      runner, recipe: DEFAULT_IMAGES.get('debian-bookworm')!, mirror: 'http://deb.debian.org/debian', output, owner: OWNER, signal,
      progress: () => undefined, workRoot, keyring: overrides.keyring ?? keyring,
    });

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
