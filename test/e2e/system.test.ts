// End to end for `banger system install|status|restart|uninstall` on a host where systemd is not PID 1: the units
// are checked with the real systemd-analyze verify, and systemctl is test/fakes/fake-systemctl.ts, a stand-in
// written from systemctl's documentation that really starts and stops what the units say (as their User=, with
// KillMode=process). A guest started under the installed services keeps its boot through a restart and an
// uninstall. Everything lives under a work directory, BANGER_HOME and a network namespace of the test's own.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER } from './e2e-banger.ts';
import { killVmmsOf, tinyRootfs } from './tiny-image.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const NETNS = `banger-e2e-sys-${process.pid}`;
const WORK = fs.mkdtempSync(path.join(process.env.BANGER_E2E_DIR ?? '/var/tmp', 'banger-e2e-sys-'));
const HOME = path.join(WORK, 'home');
const PREFIX = path.join(WORK, 'opt');
const BIN = path.join(WORK, 'bin');
const UNITS = path.join(WORK, 'units');
const STATE = path.join(WORK, 'systemctl');
const SYSTEMCTL = path.join(WORK, 'systemctl.sh');
const ENV = { ...process.env, BANGER_HOME: HOME, BANGER_NETNS: NETNS };
const HIDDEN = ['--unit-dir', UNITS, '--systemctl', SYSTEMCTL];

interface Result { code: number | null; stdout: string; stderr: string }
function run(program: string, args: string[]): Result {
  const r = spawnSync(program, args, { env: ENV, encoding: 'utf8', timeout: 10 * 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function ok(program: string, args: string[]): Result {
  const r = run(program, args);
  assert.equal(r.code, 0, `${path.basename(program)} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
const installed = (args: string[]): Result => ok(path.join(BIN, 'banger'), args);
const calls = (): string[] => fs.readFileSync(path.join(STATE, 'calls.log'), 'utf8').trim().split('\n');
const bootId = (): string => installed(['vm', 'exec', 'keep', '--', 'cat', '/proc/sys/kernel/random/boot_id']).stdout.trim();
const daemonPid = (): number => (JSON.parse(installed(['daemon', 'status', '--json']).stdout) as { pid: number }).pid;

describe('banger system install', { timeout: 20 * 60_000 }, () => {
  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root');
    assert.equal(spawnSync('ip', ['netns', 'add', NETNS]).status, 0);
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), '[dns]\nport = 0\n');
    fs.writeFileSync(SYSTEMCTL, `#!/bin/sh\nFAKE_SYSTEMCTL_UNITS=${UNITS} FAKE_SYSTEMCTL_STATE=${STATE} exec ${process.execPath} ${path.join(REPO, 'test/fakes/fake-systemctl.ts')} "$@"\n`, { mode: 0o755 });
  });

  after(() => {
    for (const unit of ['bangerd.service', 'bangerd-root.service']) spawnSync(SYSTEMCTL, ['stop', unit]);
    spawnSync(BANGER, ['daemon', 'stop'], { env: ENV });
    killVmmsOf(HOME);
    spawnSync('ip', ['netns', 'del', NETNS]);
    if (!process.env.BANGER_E2E_KEEP) fs.rmSync(WORK, { recursive: true, force: true });
  });

  test('without systemd as init (and no stand-in) it refuses before writing anything, and says what to do', { skip: fs.existsSync('/run/systemd/system') && 'systemd is init here' }, () => {
    const r = run(BANGER, ['system', 'install', '--prefix', PREFIX, '--bin-dir', BIN, '--unit-dir', UNITS]);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /systemd is not running as init on this host \(PID 1 is .+\)[\s\S]*hint: run the daemons without systemd: banger daemon start/);
    assert.equal(fs.existsSync(PREFIX), false);
    assert.equal(fs.existsSync(UNITS), false);
  });

  test('installs this build, writes units systemd-analyze accepts, and starts both services', () => {
    // Daemons started by hand before the install give way to the services.
    ok(BANGER, ['daemon', 'start']);
    const r = ok(BANGER, ['system', 'install', '--owner', 'root', '--prefix', PREFIX, '--bin-dir', BIN, ...HIDDEN]);
    assert.match(r.stdout, /installed banger .* for root/);
    assert.match(r.stderr, /stopped bangerd and bangerd-root started by hand/);
    const units = ['bangerd-root.service', 'bangerd.service'].map((u) => path.join(UNITS, u));
    const verify = spawnSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8' });
    assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'systemd-analyze verify has nothing to say');
    assert.equal(verify.status, 0);
    for (const unit of units) {
      const text = fs.readFileSync(unit, 'utf8');
      for (const line of ['KillMode=process', 'SendSIGKILL=no', 'RuntimeDirectoryPreserve=yes', `Environment=BANGER_HOME=${HOME}`, `Environment=BANGER_NETNS=${NETNS}`]) assert.ok(text.includes(`\n${line}\n`), `${unit}: ${line}`);
      assert.match(text, new RegExp(`ExecStart=${PREFIX}/current/bin/`));
    }
    assert.match(fs.readFileSync(units[0]!, 'utf8'), /\nCapabilityBoundingSet=CAP_NET_ADMIN .*\n/);
    assert.deepEqual(calls().slice(-2), ['daemon-reload', 'enable --now bangerd-root.service bangerd.service']);
    assert.ok(fs.existsSync(path.join(UNITS, 'multi-user.target.wants', 'bangerd.service')), 'enabled');
    const record = JSON.parse(fs.readFileSync(path.join(PREFIX, 'install.json'), 'utf8')) as { owner: { name: string }; units: string[] };
    assert.deepEqual([record.owner.name, record.units], ['root', ['bangerd-root.service', 'bangerd.service']]);
    assert.match(fs.readlinkSync(path.join(PREFIX, 'current')), /^versions\/\d+\.\d+\.\d+/);
    assert.equal(fs.existsSync(path.join(PREFIX, 'current', 'src')), false, 'a release: what was built, no sources');
    assert.match(installed(['version']).stdout, /^bangerd \d/m);
    const status = JSON.parse(installed(['system', 'status', '--json', ...HIDDEN]).stdout) as { units: Record<string, { active: string }>; answering: boolean };
    assert.deepEqual(Object.values(status.units).map((u) => u.active), ['active', 'active']);
    assert.equal(status.answering, true);
  });

  test('installing again is refused with what to do instead', () => {
    const r = run(path.join(BIN, 'banger'), ['system', 'install', '--owner', 'root', '--bin-dir', BIN, ...HIDDEN]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is installed in .* already[\s\S]*hint: newer releases: banger update/);
  });

  test('a restart of both services keeps a running guest on the same boot', () => {
    installed(['image', 'register', 'tiny', '--rootfs', tinyRootfs(WORK)]);
    installed(['vm', 'create', '--image', 'tiny', '--name', 'keep']);
    const boot = bootId();
    const pid = daemonPid();
    assert.match(installed(['system', 'restart', ...HIDDEN]).stdout, /restarted bangerd-root\.service and bangerd\.service/);
    assert.notEqual(daemonPid(), pid);
    assert.equal(bootId(), boot);
  });

  test('uninstall removes the services, commands and releases, and keeps the VMs', () => {
    const vmDir = path.join(HOME, 'state', 'vms');
    const r = installed(['system', 'uninstall', ...HIDDEN]);
    assert.match(r.stdout, /kept the VMs, images and kernels/);
    for (const gone of [path.join(UNITS, 'bangerd.service'), path.join(UNITS, 'multi-user.target.wants', 'bangerd.service'), PREFIX, path.join(BIN, 'banger')]) {
      assert.equal(fs.existsSync(gone), false, `${gone} is gone`);
    }
    assert.ok(fs.readdirSync(vmDir).length > 0, 'the VM stays');
    // A banger run by hand finds the guest the services left running.
    assert.equal((JSON.parse(ok(BANGER, ['vm', 'show', 'keep', '--json']).stdout) as { state: string }).state, 'running');
  });
});
