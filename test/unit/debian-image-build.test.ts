import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULT_IMAGES } from '../../src/protocol/image-recipes.ts';
import { buildDebianImage, handOver } from '../../src/helper/debian-image-build.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { FakeProcessRunner, type FakeCall } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';

const IS_ROOT = process.getuid?.() === 0;
const OWNER = IS_ROOT ? { uid: 65534, gid: 65534 } : { uid: process.getuid!(), gid: process.getgid!() };
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
    if (IS_ROOT) fs.chownSync(cache, OWNER.uid, OWNER.gid);
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

  it('builds in a private directory outside the cache and leaves nothing there', async () => {
    const output = path.join(cache, 'rootfs.ext4');
    await build(output);
    const tree = runner.callsTo('debootstrap')[0]!.args.at(-2)!;
    const image = runner.callsTo('mkfs.ext4')[0]!.args.at(-2)!;
    for (const p of [tree, image]) assert.ok(p.startsWith(`${workRoot}${path.sep}banger-image-`), `${p} is not in the private build directory`);
    assert.deepEqual(fs.readdirSync(workRoot), [], 'the build directory was not removed');
    assert.deepEqual(fs.readdirSync(cache), ['rootfs.ext4']);
  });

  it('checks the archive signature against the Debian keyring', async () => {
    await build(path.join(cache, 'rootfs.ext4'));
    const args = runner.callsTo('debootstrap')[0]!.args;
    assert.ok(args.includes(`--keyring=${keyring}`));
    assert.ok(args.includes('--force-check-gpg'));
  });

  it('reports a missing keyring before downloading anything', async () => {
    await assert.rejects(build(path.join(cache, 'rootfs.ext4'), { keyring: path.join(dir, 'nope.gpg') }), fails('MISSING_TOOL', /keyring/, { hint: true }));
    assert.equal(runner.calls.length, 0);
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
    assert.equal(runner.calls.some((c) => c.command === (IS_ROOT ? 'setpriv' : 'cp')), true);
    assert.ok(st.blocks * 512 <= 3 * MIB, `the copy is not sparse (${st.blocks * 512} bytes allocated)`);
  });

  it('removes the build directory when debootstrap fails, and leaves no output', async () => {
    runner.on('debootstrap', () => ({ code: 1, stderr: 'E: Failed getting release file' }));
    await assert.rejects(build(path.join(cache, 'rootfs.ext4')), fails('IMAGE_BUILD_FAILED', /Failed getting release file/));
    assert.deepEqual(fs.readdirSync(workRoot), []);
    assert.deepEqual(fs.readdirSync(cache), []);
  });

  it('writes through a symlink the owner left at the partial file only as the owner', { skip: !IS_ROOT && 'needs root' }, async () => {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'root file', { mode: 0o644 });
    const output = path.join(cache, 'rootfs.ext4');
    fs.symlinkSync(victim, `${output}.partial`);
    await build(output);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'root file');
    assert.equal(fs.lstatSync(output).isFile(), true);
  });
});

describe('handOver', { skip: !IS_ROOT && 'needs root to hand a file to another user' }, () => {
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
