import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { FakeCall, FakeProcessRunner } from '../fakes/fake-process-runner.ts';
import { buildImage, fakeImageBuildRunner, imageBuildDirs, type ImageBuildDirs } from '../fakes/fake-image-build.ts';
import { fails } from '../fakes/expect-error.ts';
import { customizeRootfs } from '../../src/helper/debian-image-build.ts';

// The owner is this user, so the build needs no root; the hand-over to another user runs for real in test/root.
const OWNER = { uid: process.getuid!(), gid: process.getgid!() };
/** The hand-over's copy (`cp --sparse=always /dev/stdin PARTIAL`, behind setpriv unless root): the image it is given. */
const fakeCopy = ({ args, options }: FakeCall) => {
  fs.writeFileSync(args.at(-1)!, fs.readFileSync(options.stdinFd!));
  return { code: 0 };
};

describe('buildDebianImage', () => {
  let dirs: ImageBuildDirs;
  let dir: string;
  let workRoot: string;
  let cache: string;
  let keyring: string;
  let runner: FakeProcessRunner;

  before(() => {
    dirs = imageBuildDirs(OWNER);
    ({ dir, workRoot, cache, keyring } = dirs);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  beforeEach(() => {
    for (const f of fs.readdirSync(cache)) fs.rmSync(path.join(cache, f), { recursive: true, force: true });
    runner = fakeImageBuildRunner(fakeCopy);
  });

  const build = (output: string, overrides: { keyring?: string } = {}) =>
    buildImage({ runner, dirs, owner: OWNER, output, ...(overrides.keyring === undefined ? {} : { keyring: overrides.keyring }) });

  it('builds in a private directory outside the cache and leaves nothing there', async () => {
    const output = path.join(cache, 'rootfs.ext4');
    await build(output);
    const tree = runner.callsTo('debootstrap')[0]!.args.at(-2)!;
    const image = runner.callsTo('mkfs.ext4')[0]!.args.at(-2)!;
    for (const p of [tree, image]) assert.ok(p.startsWith(`${workRoot}${path.sep}banger-image-${process.pid}-`), `${p} is not in the private build directory`);
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

describe('customizeRootfs', () => {
  let tree: string;
  before(() => {
    tree = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-rootfs-'));
    fs.mkdirSync(path.join(tree, 'etc/ssh'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'var/cache/apt/archives'), { recursive: true });
    customizeRootfs(tree);
  });
  after(() => fs.rmSync(tree, { recursive: true, force: true }));

  const maskedIn = (dir: string, name: string): boolean => fs.readlinkSync(path.join(tree, dir, name)) === '/dev/null';

  it('starts sshd without waiting for basic.target, weighted over background services', () => {
    const dropIn = fs.readFileSync(path.join(tree, 'etc/systemd/system/ssh.service.d/banger.conf'), 'utf8');
    assert.match(dropIn, /^DefaultDependencies=no$/m);
    assert.match(dropIn, /^Conflicts=shutdown\.target$/m, 'still stopped at shutdown');
    assert.match(dropIn, /^CPUWeight=1000$/m);
    assert.match(dropIn, /^ExecStartPre=$/m);
  });

  it('masks generators for what a VM never has, and keeps those a user can feed (fstab, getty, sysv, rc-local)', () => {
    for (const g of ['systemd-gpt-auto-generator', 'systemd-cryptsetup-generator', 'systemd-hibernate-resume-generator']) {
      assert.ok(maskedIn('etc/systemd/system-generators', g), g);
    }
    for (const g of ['systemd-fstab-generator', 'systemd-getty-generator', 'systemd-sysv-generator', 'systemd-rc-local-generator']) {
      assert.ok(!fs.existsSync(path.join(tree, 'etc/systemd/system-generators', g)), `${g} is not masked`);
    }
  });

  it('masks boot-time module loads by instance, leaving the template for users', () => {
    for (const m of ['loop', 'dm_mod', 'efi_pstore']) assert.ok(maskedIn('etc/systemd/system', `modprobe@${m}.service`), m);
    assert.ok(!fs.existsSync(path.join(tree, 'etc/systemd/system', `modprobe@.service`)));
  });
});
