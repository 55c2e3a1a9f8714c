// What the e2e tests that need a running guest but not a Debian one share: a busybox root file system (booted with
// banger's agent as init, up in seconds, no image build), and killing the QEMU processes a home left behind.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

/** Writes `dir`/tiny.ext4: /bin/busybox with sh and cat, root in /etc/passwd, and the mount points; its path. */
export function tinyRootfs(dir: string): string {
  const root = path.join(dir, 'tiny-rootfs');
  for (const d of ['bin', 'etc', 'dev', 'proc', 'sys', 'run', 'tmp', 'root']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin', 'busybox'));
  for (const applet of ['sh', 'cat']) fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  const image = path.join(dir, 'tiny.ext4');
  assert.equal(spawnSync('mkfs.ext4', ['-q', '-d', root, image, '64M']).status, 0, 'mkfs.ext4 -d of the busybox tree');
  fs.rmSync(root, { recursive: true });
  return image;
}

/** SIGKILL to every QEMU whose command line names `home` (its disks and sockets live there). */
export function killVmmsOf(home: string): void {
  for (const line of spawnSync('pgrep', ['-a', '-f', `qemu-system.*${home}`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) {
    process.kill(Number(line.split(' ')[0]), 'SIGKILL');
  }
}
