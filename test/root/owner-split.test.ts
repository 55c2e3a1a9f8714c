// The owner/root split as a user meets it: bangerd runs as an unprivileged owner (nobody) and needs no root of
// its own; `banger daemon start` says which command starts bangerd-root, root runs that command, and a request
// that needs root (applying a rootfs tar with a setuid file, owned by root, into an ext4) goes CLI → bangerd →
// bangerd-root and back. No guest boots and no network is touched: the network is the host's (bangerd refuses
// a namespace without root), and nothing here makes a bridge, tap or rule.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BANGER = fileURLToPath(new URL('../../bin/banger', import.meta.url));
const NOBODY = { uid: 65534, gid: 65534 };

describe('bangerd as an unprivileged owner, bangerd-root as root', () => {
  let base: string;
  let env: NodeJS.ProcessEnv;
  let helper: ChildProcess | null = null;

  /** banger run as the owner, the way that user would run it. */
  const asOwner = (args: string[]) => spawnSync('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', '--', BANGER, ...args], { env, encoding: 'utf8', timeout: 120_000 });

  before(() => {
    base = fs.mkdtempSync('/var/tmp/banger-split-');
    fs.chmodSync(base, 0o755);
    const home = path.join(base, 'home');
    const bangerHome = path.join(base, 'banger');
    fs.mkdirSync(path.join(bangerHome, 'config'), { recursive: true });
    fs.mkdirSync(home);
    // Its own bridge name and subnet, though nothing here creates them; no DNS server on the host's port.
    fs.writeFileSync(path.join(bangerHome, 'config', 'config.toml'), '[dns]\nport = 0\n\n[network]\nbridge = "bgsplit0"\nsubnet = "172.31.79.0/24"\n');
    spawnSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, home, bangerHome]);
    env = { ...process.env, BANGER_HOME: bangerHome, HOME: home, BANGER_NETNS: '' };
    // A root filesystem as `docker export` gives it: root's files, one setuid.
    const tree = path.join(base, 'tree');
    fs.mkdirSync(path.join(tree, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(tree, 'bin'));
    fs.writeFileSync(path.join(tree, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    fs.writeFileSync(path.join(tree, 'etc', 'group'), 'root:x:0:\n');
    fs.writeFileSync(path.join(tree, 'bin', 'tool'), '#!/bin/sh\n', { mode: 0o755 });
    fs.chmodSync(path.join(tree, 'bin', 'tool'), 0o4755);
    spawnSync('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', tree, '-cf', path.join(base, 'rootfs.tar'), '.']);
    fs.chmodSync(path.join(base, 'rootfs.tar'), 0o644);
  });

  after(async () => {
    asOwner(['daemon', 'stop']);
    if (helper && helper.exitCode === null) {
      const exited = new Promise((r) => helper!.once('exit', r));
      helper.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(base, { recursive: true, force: true });
  });

  it('starts bangerd as the owner, names the helper command, and serves a root-only request through both', async () => {
    const started = asOwner(['daemon', 'start']);
    assert.equal(started.status, 0, started.stderr);
    assert.match(started.stdout, /started bangerd/);
    const command = /start it with:\n\s+sudo (\S+bangerd-root .*)$/m.exec(started.stderr)?.[1];
    assert.ok(command, `no helper command in: ${started.stderr}`);
    assert.match(command, new RegExp(`--owner ${NOBODY.uid}:${NOBODY.gid} `));

    // Root runs exactly what the owner was told to run with sudo.
    const [bin, ...args] = command.split(' ');
    helper = spawn(bin!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let helperLog = '';
    helper.stderr!.on('data', (d: Buffer) => (helperLog += d.toString()));
    const socket = args[args.indexOf('--socket') + 1]!;
    for (let i = 0; i < 200 && !fs.existsSync(socket) && helper.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));

    const status = asOwner(['daemon', 'status', '--json']);
    assert.equal(status.status, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { pid: number; helper: { reachable: boolean; pid: number | null } };
    assert.deepEqual(s.helper, { reachable: true, socket, pid: helper.pid }, helperLog);
    const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    assert.equal(uidOf(s.pid), NOBODY.uid, 'bangerd runs as the owner');
    assert.equal(uidOf(helper.pid!), 0, 'bangerd-root runs as root');

    // Applying the tar keeps root's ownership and the setuid bit, which only bangerd-root can do.
    const out = path.join(env.HOME!, 'tiny.tar.zst');
    const made = asOwner(['image', 'make-bundle', '--rootfs-tar', path.join(base, 'rootfs.tar'), '--name', 'tiny', '--out', out]);
    assert.equal(made.status, 0, `${made.stderr}\n${helperLog}`);
    assert.equal(fs.statSync(out).uid, NOBODY.uid);
    const unpacked = path.join(base, 'unpacked');
    fs.mkdirSync(unpacked);
    const untar = spawnSync('tar', ['--zstd', '-xf', out, '-C', unpacked, 'rootfs.ext4'], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
    const stat = spawnSync('debugfs', ['-R', 'stat /bin/tool', path.join(unpacked, 'rootfs.ext4')], { encoding: 'utf8' });
    assert.match(stat.stdout, /Mode:\s+04755/);
    assert.match(stat.stdout, /User:\s+0\s+Group:\s+0/);
  });
});
