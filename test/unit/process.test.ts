// runChecked: how a failing external program reaches the user (TOOL_FAILED with its command line, how it
// ended, its output's tail and a hint), against FakeProcessRunner; a missing program against the real runner.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { BangerError } from '../../src/protocol/errors.ts';
import { NodeProcessRunner, runChecked, toolFailureHint } from '../../src/system/process.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

/** The BangerError `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<BangerError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof BangerError, `a BangerError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('runChecked', () => {
  it('returns the result of a program that exits 0', async () => {
    const runner = new FakeProcessRunner().on('true', () => ({ stdout: 'ok\n' }));
    assert.equal((await runChecked(runner, 'true', [])).stdout, 'ok\n');
  });

  it('reports a failing program as TOOL_FAILED with its quoted command line, exit status and last stderr lines', async () => {
    const stderr = ['one', 'two', 'three', 'four', 'five', 'six', 'mkfs.ext4: No space left on device while writing', ''].join('\n');
    const runner = new FakeProcessRunner().on('mkfs.ext4', () => ({ code: 1, stderr, stdout: 'ignored when stderr has text' }));
    const err = await rejection(runChecked(runner, 'mkfs.ext4', ['-q', '-L', 'banger root', '/d/work.ext4']));
    assert.equal(err.code, 'TOOL_FAILED');
    assert.equal(err.message, "mkfs.ext4 -q -L 'banger root' /d/work.ext4 failed (exit status 1): three\nfour\nfive\nsix\nmkfs.ext4: No space left on device while writing");
    assert.match(err.hint!, /apt-get install e2fsprogs/);
    assert.match(err.hint!, /free disk space/);
    assert.match(err.hint!, /check that mkfs\.ext4 works: run the command above by hand$/);
  });

  it('uses stdout when stderr is empty, and says when a signal ended the program', async () => {
    const runner = new FakeProcessRunner().on('qemu-img', () => ({ code: null, signal: 'SIGKILL', stdout: 'Formatting overlay\n' }));
    const err = await rejection(runChecked(runner, 'qemu-img', ['create', '-f', 'qcow2', 'x.qcow2']));
    assert.equal(err.code, 'TOOL_FAILED');
    assert.equal(err.message, 'qemu-img create -f qcow2 x.qcow2 failed (killed by SIGKILL): Formatting overlay');
    assert.match(err.hint!, /apt-get install qemu-utils qemu-system-x86/);
  });

  it('says when the program ran out of time, even if it then exited 0', async () => {
    const runner = new FakeProcessRunner().on('ip', () => ({ code: 0, timedOut: true }));
    const err = await rejection(runChecked(runner, 'ip', ['link', 'show'], { timeoutMs: 2500 }));
    assert.equal(err.message, 'ip link show failed (timed out after 2500ms)');
    assert.match(err.hint!, /iproute2/);
  });

  it("takes the caller's hint instead of the program's", async () => {
    const runner = new FakeProcessRunner().on('ip', () => ({ code: 2, stderr: 'RTNETLINK answers: File exists' }));
    await assert.rejects(runChecked(runner, 'ip', ['link', 'add'], { hint: 'delete the old link: ip link del X' }), (err: unknown) => {
      assert.ok(err instanceof BangerError);
      assert.equal(err.hint, 'delete the old link: ip link del X');
      return true;
    });
    assert.equal('hint' in runner.callsTo('ip')[0]!.options, false, 'the hint is not passed to the runner');
  });

  it('gives every program a hint, by its base name', () => {
    assert.equal(toolFailureHint('/usr/bin/frobnicate'), 'check that frobnicate works: run the command above by hand');
    assert.match(toolFailureHint('/usr/sbin/debootstrap'), /mirror .* is reachable/);
    // What the output says comes first: a full disk is a full disk whichever tool hit it.
    assert.match(toolFailureHint('qemu-img', 'qemu-img: x.qcow2: Could not write: No space left on device'), /^the disk is full: free space .*; QEMU comes from/);
    assert.match(toolFailureHint('mkfs.ext4', 'mkfs.ext4: Permission denied while trying to open x'), /^a file or directory is not writable/);
    assert.match(toolFailureHint('ssh-keygen'), /openssh-client/);
    assert.match(toolFailureHint('qemu-system-x86_64'), /qemu-system-x86/);
  });

  it('reports a cancelled run as CANCELLED, not as the failure the kill caused', async () => {
    const controller = new AbortController();
    const runner = new FakeProcessRunner().on('debootstrap', () => {
      controller.abort();
      return { code: null, signal: 'SIGTERM' };
    });
    await assert.rejects(runChecked(runner, 'debootstrap', [], { signal: controller.signal }), fails('CANCELLED', /debootstrap was cancelled/));
  });

  it('reports a program that is not installed as MISSING_TOOL', async () => {
    // A PATH of one empty directory: a PATH entry this user may not search would make the lookup fail with EACCES.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-path-'));
    try {
      const run = runChecked(new NodeProcessRunner(), 'banger-no-such-program', [], { env: { PATH: dir } });
      await assert.rejects(run, fails('MISSING_TOOL', /banger-no-such-program is not installed/, { hint: true }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
