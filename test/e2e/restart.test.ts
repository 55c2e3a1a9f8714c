// End to end for surviving restarts (issue 10), with real QEMU guests in a network namespace the test creates:
// a SIGKILL of bangerd or of bangerd-root leaves guests running and the next daemon finds them (same boot id); a
// VM whose QEMU is really gone is marked stopped and its tap removed; a SIGKILL of bangerd in the middle of
// `vm create` leaves nothing behind once the next daemon has started. The guest is a busybox root file system
// booted with banger's agent as init, which is up in seconds.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER, e2eBanger } from './e2e-banger.ts';
import { tinyRootfs } from './tiny-image.ts';

const NETNS = `banger-e2e-rst-${process.pid}`;
const { home: HOME, env: ENV, ok, vmmProcesses, teardown } = e2eBanger('banger-e2e-rst-', NETNS);

interface Vm { id: string; name: string; state: string; pid: number | null; tap: string }
const json = <T>(args: string[]): T => JSON.parse(ok([...args, '--json']).stdout) as T;
const bootId = (vm: string): string => ok(['vm', 'exec', vm, '--', 'cat', '/proc/sys/kernel/random/boot_id']).stdout.trim();
const pidOf = (name: 'bangerd' | 'bangerd-root'): number => Number(fs.readFileSync(path.join(HOME, 'run', `${name}.pid`), 'utf8'));
const tapExists = (tap: string): boolean => spawnSync('ip', ['-n', NETNS, 'link', 'show', 'dev', tap]).status === 0;
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** SIGKILL, then wait until the process is gone (its socket may linger: the next start must cope with that). */
async function killHard(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  for (let i = 0; alive(pid); i++) {
    assert.ok(i < 400, `process ${pid} outlived SIGKILL`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('surviving restarts', { timeout: 20 * 60_000 }, () => {
  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), '[dns]\nport = 0\n');
    ok(['image', 'register', 'tiny', '--rootfs', tinyRootfs(HOME)]);
  });

  after(() => {
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  test('a SIGKILL of bangerd leaves the guest running; the next bangerd finds the same boot', async () => {
    const vm = json<Vm>(['vm', 'create', '--image', 'tiny', '--name', 'keep']);
    const boot = bootId('keep');
    await killHard(pidOf('bangerd'));
    assert.ok(alive(vm.pid!), 'the guest outlived bangerd');
    ok(['daemon', 'start']);
    const found = json<Vm>(['vm', 'show', 'keep']);
    assert.deepEqual([found.state, found.pid], ['running', vm.pid]);
    assert.equal(bootId('keep'), boot);
  });

  test('a SIGKILL of bangerd-root leaves the guest running; vm stop afterwards still removes its tap', async () => {
    const vm = json<Vm>(['vm', 'show', 'keep']);
    const boot = bootId('keep');
    await killHard(pidOf('bangerd-root'));
    assert.ok(alive(vm.pid!), 'the guest outlived bangerd-root');
    assert.equal(bootId('keep'), boot);
    ok(['vm', 'stop', 'keep']);
    assert.equal(tapExists(vm.tap), false, `tap ${vm.tap} is gone after vm stop`);
    ok(['vm', 'start', 'keep']);
  });

  test("a VM whose QEMU died while bangerd was down is marked stopped and its tap removed", async () => {
    const vm = json<Vm>(['vm', 'show', 'keep']);
    assert.equal(vm.state, 'running');
    await killHard(pidOf('bangerd'));
    await killHard(vm.pid!);
    ok(['daemon', 'start']);
    const after = json<Vm>(['vm', 'show', 'keep']);
    assert.deepEqual([after.state, after.pid], ['stopped', null]);
    assert.equal(tapExists(vm.tap), false);
  });

  test('a SIGKILL of bangerd in the middle of vm create leaves nothing once the next bangerd has started', async () => {
    const before = fs.readdirSync(path.join(HOME, 'state', 'vms')).sort();
    const create = spawn(BANGER, ['vm', 'create', '--image', 'tiny', '--name', 'half'], { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
    const lines = readline.createInterface({ input: create.stderr! });
    // Once QEMU runs, the tap is up and the disks are made: the most there is to leave behind.
    await new Promise<void>((resolve, reject) => {
      lines.on('line', (line) => {
        if (/waiting for the guest agent in half/.test(line)) resolve();
      });
      create.once('exit', (code) => reject(new Error(`vm create ended (${code}) before its guest booted`)));
    });
    const half = json<Vm[]>(['vm', 'list', '--all']).find((v) => v.name === 'half')!;
    assert.ok(half && tapExists(half.tap) && vmmProcesses().some((p) => p.includes(half.id)), 'the create had made its tap and started QEMU');
    await killHard(pidOf('bangerd'));
    await new Promise((resolve) => (create.exitCode !== null ? resolve(null) : create.once('exit', resolve)));
    ok(['daemon', 'start']);
    assert.equal(json<Vm[]>(['vm', 'list', '--all']).some((v) => v.name === 'half'), false, 'no half-made VM row');
    assert.deepEqual(fs.readdirSync(path.join(HOME, 'state', 'vms')).sort(), before, 'no half-made VM directory');
    assert.equal(tapExists(half.tap), false, 'no tap left');
    assert.equal(vmmProcesses().some((p) => p.includes(half.id)), false, 'no QEMU left');
    assert.match(fs.readFileSync(path.join(HOME, 'state', 'logs', 'bangerd.log'), 'utf8'), /vm half: its create did not finish/);
  });
});
