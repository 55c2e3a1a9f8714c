// The overlay root Firecracker VMs boot with (banger.overlay=1: the image read-only and shared, a per-VM disk
// labelled banger-upper over it), assembled by banger's real /init in a real guest kernel. Firecracker cannot run
// here, so QEMU boots the same three raw drives the Firecracker driver hands over, with the initrd banger made
// for the VM. The guest gets a network card on a QEMU hub with nothing else on it: it reaches nothing at all.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eBanger } from './e2e-banger.ts';
import { tinyRootfs } from './tiny-image.ts';
import { OVERLAY_CMDLINE_FLAG, UPPER_LABEL } from '../../src/system/guest-contract.ts';

const NETNS = `banger-e2e-ovl-${process.pid}`;
const { home: HOME, ok, teardown } = e2eBanger('banger-e2e-ovl-', NETNS);
const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

describe('the overlay root of banger.overlay=1', { timeout: 10 * 60_000 }, () => {
  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root');
    assert.equal(spawnSync('ip', ['netns', 'add', NETNS]).status, 0);
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), '[dns]\nport = 0\n');
  });

  after(() => {
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  test("banger's /init lays the VM's disk over the read-only image, and the guest's writes land only there", async () => {
    ok(['image', 'register', 'tiny', '--rootfs', tinyRootfs(HOME)]);
    const vm = JSON.parse(ok(['vm', 'create', '--image', 'tiny', '--name', 'ovl', '--no-start', '--json']).stdout) as { id: string; kernel: string };
    const image = (JSON.parse(ok(['image', 'show', 'tiny', '--json']).stdout) as { path: string }).path;
    const kernel = (JSON.parse(ok(['kernel', 'show', vm.kernel, '--json']).stdout) as { kernelPath: string }).kernelPath;
    const dir = path.join(HOME, 'state', 'vms', vm.id);
    const upper = path.join(HOME, 'upper.ext4');
    fs.writeFileSync(upper, '');
    fs.truncateSync(upper, 256 * 1024 ** 2);
    assert.equal(spawnSync('mkfs.ext4', ['-q', '-F', '-L', UPPER_LABEL, upper]).status, 0);
    const imageSha = sha(image);
    const serial = path.join(HOME, 'overlay-serial.log');
    const drive = (id: string, file: string, extra = ''): string[] => ['-drive', `id=${id},file=${file},format=raw,if=none${extra}`, '-device', `virtio-blk-device,drive=${id}`];
    const qemu = spawn('qemu-system-x86_64', [
      '-M', 'microvm,rtc=on', '-accel', 'tcg', '-m', '512', '-smp', '1', '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
      '-kernel', kernel, '-initrd', path.join(dir, 'initrd.img'), '-append', `console=ttyS0 reboot=t panic=-1 ${OVERLAY_CMDLINE_FLAG}`,
      '-serial', `file:${serial}`,
      ...drive('image', image, ',readonly=on'), ...drive('upper', upper), ...drive('work', path.join(dir, 'work.ext4')),
      // A network card on a hub with no other port: /init configures eth0, and nothing is reachable through it.
      '-netdev', 'hubport,id=n0,hubid=0', '-device', 'virtio-net-device,netdev=n0',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    qemu.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const console = (): string => (fs.existsSync(serial) ? fs.readFileSync(serial, 'utf8') : '');
    /** Until `done` holds; the guest (or QEMU) ending first fails with what it printed. */
    const until = async (what: string, done: () => boolean): Promise<void> => {
      for (let i = 0; !done(); i++) {
        assert.ok(qemu.exitCode === null && qemu.signalCode === null && i < 4800, `${what}: QEMU ${qemu.exitCode ?? qemu.signalCode ?? 'still running'}\n${stderr}\n${console().slice(-1500)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await until("the guest reaches banger's agent as init", () => /starting banger's agent as init/.test(console()));
      // The agent as init writes the VM's identity into its root; ext4 commits it to the VM's disk within seconds.
      await until("the guest's /etc/hostname reaches the VM's disk", () => /\/hostname\//.test(spawnSync('debugfs', ['-R', 'ls -p /upper/etc', upper], { encoding: 'utf8' }).stdout));
    } finally {
      qemu.kill('SIGKILL');
      await new Promise((resolve) => (qemu.exitCode !== null || qemu.signalCode !== null ? resolve(null) : qemu.once('exit', resolve)));
    }
    assert.doesNotMatch(console(), /cannot assemble the overlay root|cannot mount/);
    assert.equal(sha(image), imageSha, 'the shared image is unchanged');
  });
});
