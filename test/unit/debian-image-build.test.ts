import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DEFAULT_IMAGES } from '../../src/protocol/image-recipes.ts';
import { buildDebianImage } from '../../src/helper/debian-image-build.ts';
import { FakeProcessRunner, type FakeCall } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';

// The owner is this user, so the build needs no root; the hand-over to another user runs for real in test/root.
const OWNER = { uid: process.getuid!(), gid: process.getgid!() };
const MIB = 1024 * 1024;
/** The hand-over's copy (`cp --sparse=always /dev/stdin PARTIAL`, behind setpriv unless root): the image it is given. */
const fakeCopy = ({ args, options }: FakeCall) => {
  fs.writeFileSync(args.at(-1)!, fs.readFileSync(options.stdinFd!));
  return { code: 0 };
};

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
    runner.on('setpriv', fakeCopy).on('cp', fakeCopy);
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

  it('removes the build directory when debootstrap fails, and leaves no output', async () => {
    runner.on('debootstrap', () => ({ code: 1, stderr: 'E: Failed getting release file' }));
    await assert.rejects(build(path.join(cache, 'rootfs.ext4')), fails('IMAGE_BUILD_FAILED', /Failed getting release file/));
    assert.deepEqual(fs.readdirSync(workRoot), []);
    assert.deepEqual(fs.readdirSync(cache), []);
  });
});
