// The overlay root of banger's /init (banger.overlay=1, Firecracker's disks), run by sh with stand-ins for the
// programs it calls: what it mounts, in which order, with and without the flag.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { INIT_SCRIPT, MOUNT_ROOT_SECTION } from '../../src/kernel/initrd.ts';

describe('MOUNT_ROOT_SECTION', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-overlay-'));
    const shim = (name: string, body: string): void => fs.writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    shim('cat', 'printf "%s\\n" "$CMDLINE"');
    shim('findfs', 'case "$1" in LABEL=banger-upper) [ -n "$NO_UPPER" ] && exit 1; echo /dev/vdb ;; *) exit 1 ;; esac');
    shim('mount', 'echo "mount $*" >> "$LOG"');
    shim('mkdir', 'echo "mkdir $*" >> "$LOG"');
    shim('usleep', ':');
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (cmdline: string, env: Record<string, string> = {}): { log: string[]; out: string } => {
    const log = path.join(dir, `log-${Math.random()}`);
    fs.writeFileSync(log, '');
    let out = '';
    try {
      out = execFileSync('/bin/sh', ['-c', `fail() { echo "FAIL: $*"; exit 1; }\nroot=/dev/vda\n${MOUNT_ROOT_SECTION}`], {
        env: { PATH: dir, LOG: log, CMDLINE: cmdline, ...env }, encoding: 'utf8',
      });
    } catch (err) {
      out = (err as { stdout: string }).stdout;
    }
    return { log: fs.readFileSync(log, 'utf8').trim().split('\n').filter(Boolean), out };
  };

  it('without the flag mounts the root disk as it is (QEMU, qcow2)', () => {
    assert.deepEqual(run('console=ttyS0 loglevel=4').log, ['mount -t ext4 /dev/vda /newroot']);
  });

  it('with banger.overlay=1 lays this VM\'s disk over the read-only image', () => {
    assert.deepEqual(run('console=ttyS0 banger.overlay=1 reboot=t').log, [
      'mkdir -p /lower /upper',
      'mount -t ext4 -o ro /dev/vda /lower',
      'mount -t ext4 /dev/vdb /upper',
      'mkdir -p /upper/upper /upper/work',
      'mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/upper,workdir=/upper/work /newroot',
    ]);
  });

  it('fails with a message when the overlay disk never appears', () => {
    const { out, log } = run('banger.overlay=1', { NO_UPPER: '1' });
    assert.match(out, /FAIL: the overlay disk labelled banger-upper did not appear/);
    assert.deepEqual(log, []);
  });

  it('is the section /init runs', () => {
    assert.ok(INIT_SCRIPT.includes(MOUNT_ROOT_SECTION));
  });
});
