import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { buildDirPrefix, removeAbandonedImageBuilds } from '../../src/helper/abandoned-image-builds.ts';

const IS_ROOT = process.getuid?.() === 0;

/** The pid of a process that has exited: a helper killed mid-build. */
function deadPid(): number {
  const { pid } = spawnSync('true');
  assert.ok(pid && !fs.existsSync(`/proc/${pid}`), `pid ${pid} is still live`);
  return pid;
}

describe('removeAbandonedImageBuilds', () => {
  let dir: string;
  let workRoot: string;
  let noMounts: string;
  let logged: string[];

  /** A build directory as buildDebianImage makes it, with a tree inside (read-only parts included). */
  const buildDir = (pid: number): string => {
    const d = fs.mkdtempSync(path.join(workRoot, buildDirPrefix(pid)));
    fs.mkdirSync(path.join(d, 'root', 'etc'), { recursive: true });
    fs.writeFileSync(path.join(d, 'root', 'etc', 'hostname'), 'banger\n', { mode: 0o444 });
    fs.writeFileSync(path.join(d, 'rootfs.ext4'), '');
    return d;
  };
  const sweep = (mountInfo = noMounts): string[] => removeAbandonedImageBuilds({ workRoot, mountInfo, log: (line) => logged.push(line) });

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-sweep-'));
    workRoot = path.join(dir, 'work');
    fs.mkdirSync(workRoot);
    noMounts = path.join(dir, 'mountinfo');
    fs.writeFileSync(noMounts, '22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n');
    logged = [];
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("removes a dead helper's build and logs it, and keeps a live helper's", () => {
    const pid = deadPid();
    const dead = buildDir(pid);
    const live = buildDir(process.pid);
    assert.deepEqual(sweep(), [dead]);
    assert.equal(fs.existsSync(dead), false);
    assert.ok(fs.existsSync(path.join(live, 'root', 'etc', 'hostname')));
    assert.equal(logged.length, 1);
    assert.match(logged[0]!, new RegExp(`removed the abandoned image build ${dead} of helper pid ${pid}`));
  });

  it('leaves alone what it did not name: other files, builds named without a pid, a symlink', () => {
    const pid = deadPid();
    const target = path.join(dir, 'target');
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, 'keep'), '');
    fs.mkdirSync(path.join(workRoot, 'banger-image-AbC123'));
    fs.mkdirSync(path.join(workRoot, `banger-image-${pid}-AbC123-extra`));
    fs.mkdirSync(path.join(workRoot, 'something-else'));
    fs.symlinkSync(target, path.join(workRoot, `${buildDirPrefix(pid)}LnK123`));
    assert.deepEqual(sweep(), []);
    assert.deepEqual(fs.readdirSync(workRoot).sort(), [`banger-image-${pid}-AbC123-extra`, `${buildDirPrefix(pid)}LnK123`, 'banger-image-AbC123', 'something-else'].sort());
    assert.ok(fs.existsSync(path.join(target, 'keep')));
    assert.deepEqual(logged, []);
  });

  it('keeps a build with something still mounted inside it, and says how to unmount it', () => {
    workRoot = path.join(dir, 'work root');
    fs.mkdirSync(workRoot);
    const pid = deadPid();
    const dead = buildDir(pid);
    const mountInfo = path.join(dir, 'mountinfo-with-proc');
    // As debootstrap killed mid-build leaves it: proc mounted in the tree. mountinfo escapes a space as \040.
    const escaped = path.join(dead, 'root', 'proc').replaceAll(' ', '\\040');
    fs.writeFileSync(mountInfo, `22 1 0:21 / /proc rw - proc proc rw\n95 30 0:21 / ${escaped} rw - proc proc rw\n`);
    assert.deepEqual(sweep(mountInfo), []);
    assert.ok(fs.existsSync(path.join(dead, 'root', 'etc', 'hostname')));
    assert.match(logged[0]!, new RegExp(`left the abandoned image build ${dead} .*umount -R ${path.join(dead, 'root', 'proc')}`));
  });

  it("leaves another user's directory of that name alone", { skip: !IS_ROOT && 'chown to another user needs root' }, () => {
    const other = buildDir(deadPid());
    spawnSync('chown', ['-R', '65534:65534', other]);
    assert.deepEqual(sweep(), []);
    assert.ok(fs.existsSync(other));
  });

  it('does nothing when the work root does not exist', () => {
    assert.deepEqual(removeAbandonedImageBuilds({ workRoot: path.join(dir, 'nope'), mountInfo: noMounts, log: (line) => logged.push(line) }), []);
  });
});
