import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findTapUsers } from '../../src/system/tap-users.ts';

/** A fake /proc: each process has fd links and fdinfo files as the kernel shows them for tun/tap descriptors. */
function fakeProc(root: string, processes: Record<string, Record<string, { link: string; info: string }>>): void {
  for (const [pid, fds] of Object.entries(processes)) {
    fs.mkdirSync(path.join(root, pid, 'fd'), { recursive: true });
    fs.mkdirSync(path.join(root, pid, 'fdinfo'), { recursive: true });
    for (const [fd, { link, info }] of Object.entries(fds)) {
      fs.symlinkSync(link, path.join(root, pid, 'fd', fd));
      fs.writeFileSync(path.join(root, pid, 'fdinfo', fd), info);
    }
  }
}

const tunInfo = (tap: string): string => `pos:\t0\nflags:\t0102002\nmnt_id:\t25\nino:\t1054\niff:\t${tap}\n`;

describe('findTapUsers', () => {
  let root: string;

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-proc-'));
    fakeProc(root, {
      // A VM's QEMU: stdin, a log file, and the tap.
      '4242': {
        '0': { link: '/dev/null', info: 'pos:\t0\n' },
        '5': { link: '/var/log/x', info: 'pos:\t0\niff:\tbgt00000000aa\n' },
        '12': { link: '/dev/net/tun', info: tunInfo('bgt00000000aa') },
      },
      // Another VM, on another tap whose name starts the same.
      '4300': { '9': { link: '/dev/net/tun', info: tunInfo('bgt00000000aab') } },
      // A tun descriptor not attached to any device yet (no iff line).
      '4400': { '3': { link: '/dev/net/tun', info: 'pos:\t0\nflags:\t0102002\n' } },
    });
    fs.mkdirSync(path.join(root, 'self'));
    fs.writeFileSync(path.join(root, 'meminfo'), '');
    // A process whose descriptors cannot be read (gone, or another user's under hidepid).
    fs.mkdirSync(path.join(root, '5000'));
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('finds the process whose tun descriptor is attached to the tap', () => {
    assert.deepEqual(findTapUsers('bgt00000000aa', root), [4242]);
    assert.deepEqual(findTapUsers('bgt00000000aab', root), [4300]);
  });

  it('finds no one for a tap nobody has attached', () => {
    assert.deepEqual(findTapUsers('bgt00000000bb', root), []);
  });

  it('ignores a descriptor that names the tap in its fdinfo but is not /dev/net/tun', () => {
    fakeProc(root, { '4500': { '5': { link: '/tmp/not-tun', info: tunInfo('bgt00000000cc') } } });
    assert.deepEqual(findTapUsers('bgt00000000cc', root), []);
  });

  it('finds nothing under a /proc that does not exist', () => {
    assert.deepEqual(findTapUsers('bgt00000000aa', path.join(root, 'missing')), []);
  });

  it('reads the real /proc without failing (this test process holds no tap)', () => {
    assert.deepEqual(findTapUsers('bgt0fffffffff'), []);
  });
});
