import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { HelperService, type HelperScope } from '../../src/helper/helper-service.ts';
import type { BangerError } from '../../src/protocol/errors.ts';
import { buildQemuArgv } from '../../src/system/qemu-argv.ts';
import type { QemuLaunchSpec } from '../../src/protocol/privileged-ops.ts';
import { FakeProcessRunner, type FakeCall } from '../fakes/fake-process-runner.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeGuestFirewall } from '../fakes/fake-guest-firewall.ts';

const IS_ROOT = process.getuid?.() === 0;
// Non-root owner, so QEMU is wrapped in setpriv. Running unprivileged, chown only works to ourselves.
const OWNER = IS_ROOT ? { uid: 1000, gid: 1000 } : { uid: process.getuid!(), gid: process.getgid!() };
const VM_ID = '0123456789ab';
const TAP = 'bgt0123456789ab';

const refused = (pattern?: RegExp) => fails('HELPER_REFUSED', pattern);

/** The prefix that gives the helper's short-lived children SIGKILL when it dies. */
const DEATH_SIGNAL = ['setpriv', '--pdeathsig', 'KILL', '--'];

/** argv without the death-signal prefix (which `every ip command dies with the helper` checks). */
const withoutDeathSignal = (argv: string[]): string[] => (DEATH_SIGNAL.every((a, i) => argv[i] === a) ? argv.slice(DEATH_SIGNAL.length) : argv);

/** What `ip -j -d link show` prints about a link (the fields banger reads; see refuseIfNotOwnersTap). */
interface LinkDetails {
  master?: string;
  linkinfo?: { info_kind: string; info_data?: { type: string; user?: number | string; group?: number | string } };
}

/** A tap as `ip tuntap add dev T mode tap user U group G` makes it, optionally on a bridge. */
const tapOf = (owner: { uid: number; gid: number }, master?: string): LinkDetails => ({
  ...(master === undefined ? {} : { master }),
  linkinfo: { info_kind: 'tun', info_data: { type: 'tap', user: owner.uid, group: owner.gid } },
});

/**
 * Stands in for `ip` (run through the death-signal setpriv): keeps a set of links (and bridge addresses) per
 * namespace, records argv. A link given in `links` is the owner's tap when named bgt…, else a bridge, unless
 * `kinds` ('none' for a plain device) or `details` say otherwise.
 */
function fakeIp(runner: FakeProcessRunner, initial: { links?: string[]; addrs?: Record<string, string[]>; kinds?: Record<string, string>; details?: Record<string, LinkDetails>; sysfsOwner?: Record<string, number> } = {}) {
  const links = new Set(initial.links ?? []);
  const kinds = new Map(Object.entries(initial.kinds ?? {}));
  const details = new Map(Object.entries(initial.details ?? {}));
  for (const name of links) {
    if (details.has(name)) continue;
    const kind = kinds.get(name) ?? (name.startsWith('bgt') ? 'tap' : 'bridge');
    details.set(name, kind === 'tap' ? tapOf(OWNER) : kind === 'none' ? {} : { linkinfo: { info_kind: kind } });
  }
  const addrs = new Map(Object.entries(initial.addrs ?? {}));
  const failing = new Set<string>();
  runner.on('setpriv', (call) => {
    const argv = withoutDeathSignal([call.command, ...call.args]);
    // The kernel's number for a tap's owner: cat of its sysfs file, inside the namespace with ip netns exec.
    const cat = argv[0] === 'cat' ? argv.slice(1) : argv[1] === 'netns' && argv[2] === 'exec' && argv[4] === 'cat' ? argv.slice(5) : null;
    if (cat && argv.length !== call.args.length + 1) {
      const tap = /^\/sys\/class\/net\/([^/]+)\/owner$/.exec(cat[0] ?? '')?.[1];
      const owner = tap === undefined ? undefined : initial.sysfsOwner?.[tap];
      return owner === undefined ? { code: 1, stderr: `cat: ${cat[0]}: No such file or directory` } : { stdout: `${owner}\n` };
    }
    if (argv[0] !== 'ip' || argv.length === call.args.length + 1) return { code: 99, stderr: `fake: not ip under setpriv --pdeathsig: ${argv.join(' ')}` };
    const args = argv.slice(1);
    const a = args[0] === '-n' ? args.slice(2) : args;
    const key = a.join(' ');
    if ([...failing].some((f) => key.startsWith(f))) return { code: 2, stderr: `RTNETLINK answers: fake failure of ${key}` };
    if (a[0] === 'link' && a[1] === 'show') return { code: links.has(a[3]!) ? 0 : 1, stderr: links.has(a[3]!) ? '' : `Device "${a[3]}" does not exist.` };
    if (a[0] === '-j' && a[1] === '-d' && a[2] === 'link') {
      const name = a[5]!;
      if (!links.has(name)) return { code: 1, stderr: `Device "${name}" does not exist.` };
      return { stdout: JSON.stringify([{ ifname: name, ...details.get(name) }]) };
    }
    if (a[0] === 'link' && a[1] === 'add') {
      links.add(a[3]!);
      details.set(a[3]!, { linkinfo: { info_kind: a[5]! } });
    }
    if (a[0] === 'link' && a[1] === 'del') links.delete(a[3]!);
    if (a[0] === 'link' && a[1] === 'set' && a[4] === 'master') details.set(a[3]!, { ...details.get(a[3]!), master: a[5]! });
    if (a[0] === 'tuntap' && a[1] === 'add') {
      links.add(a[3]!);
      details.set(a[3]!, { linkinfo: { info_kind: 'tun', info_data: { type: a[5]!, user: Number(a[7]), group: Number(a[9]) } } });
    }
    if (a[0] === '-j' && a[1] === 'addr') {
      const list = (addrs.get(a[4]!) ?? []).map((cidr) => ({ local: cidr.split('/')[0], prefixlen: Number(cidr.split('/')[1]) }));
      return { stdout: JSON.stringify([{ ifname: a[4], addr_info: list }]) };
    }
    if (a[0] === 'addr' && a[1] === 'add') addrs.set(a[4]!, [...(addrs.get(a[4]!) ?? []), a[2]!]);
    return { code: 0 };
  });
  return { links, fail: (prefix: string) => failing.add(prefix) };
}

const argvOf = (calls: FakeCall[]): string[][] => calls.map((c) => withoutDeathSignal([c.command, ...c.args]));

describe('HelperService', () => {
  let root: string;
  let scope: HelperScope;
  let vmDir: string;
  let outsideFile: string;
  let kernel: string;
  let initrd: string;
  let qemuBin: string;
  let runner: FakeProcessRunner;
  let helper: HelperService;
  let firewall: FakeGuestFirewall;

  const spec = (overrides: Partial<QemuLaunchSpec> = {}): QemuLaunchSpec => ({
    vmId: VM_ID,
    accel: 'tcg',
    vcpus: 2,
    memoryMib: 1024,
    kernelPath: kernel,
    initrdPath: path.join(vmDir, 'initrd.img'),
    cmdline: 'console=ttyS0 reboot=t panic=-1 tsc_early_khz=2500000',
    disks: [
      { id: 'root', path: path.join(vmDir, 'root.qcow2'), format: 'qcow2' },
      { id: 'work', path: path.join(vmDir, 'work.ext4'), format: 'raw' },
    ],
    // No network by default: a tap makes launchQemu check it with ip (see 'the VM's tap').
    net: null,
    qmpSocket: path.join(vmDir, 'qmp.sock'),
    agentSocket: path.join(vmDir, 'agent.sock'),
    serialLog: path.join(vmDir, 'serial.log'),
    pidFile: path.join(vmDir, 'qemu.pid'),
    ...overrides,
  });

  /** A process in the fake /proc: VM_ID's QEMU running as `uid` unless told otherwise. */
  const fakeProcess = (pid: number, o: { uid: number; exe?: string; name?: string }): void => {
    const dir = path.join(scope.procDir, String(pid));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'status'), `Name:\tqemu\nUid:\t${o.uid}\t${o.uid}\t${o.uid}\t${o.uid}\n`);
    fs.writeFileSync(path.join(dir, 'stat'), `${pid} (qemu-system-x86) S 1 1 1`);
    fs.symlinkSync(o.exe ?? qemuBin, path.join(dir, 'exe'));
    fs.writeFileSync(path.join(dir, 'cmdline'), [o.exe ?? qemuBin, '-name', `${o.name ?? `banger-${VM_ID}`},process=banger`, ''].join('\0'));
  };

  before(() => {
    root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'banger-helper-')));
    scope = {
      owner: OWNER,
      stateDir: path.join(root, 'state'),
      cacheDir: path.join(root, 'cache'),
      runDir: path.join(root, 'run'),
      netnsDir: path.join(root, 'netns'),
      procDir: path.join(root, 'proc'),
      network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null },
    };
    for (const d of [scope.stateDir, scope.cacheDir, scope.runDir, scope.netnsDir, scope.procDir, path.join(root, 'outside'), path.join(root, 'bin')]) {
      fs.mkdirSync(d, { recursive: true });
    }
    fs.writeFileSync(path.join(scope.netnsDir, 'testns'), '');
    vmDir = path.join(scope.stateDir, 'vms', VM_ID);
    fs.mkdirSync(vmDir, { recursive: true });
    for (const f of ['initrd.img', 'root.qcow2', 'work.ext4']) fs.writeFileSync(path.join(vmDir, f), f);
    kernel = path.join(scope.cacheDir, 'kernels', 'vmlinuz');
    fs.mkdirSync(path.dirname(kernel), { recursive: true });
    fs.writeFileSync(kernel, 'kernel');
    initrd = path.join(vmDir, 'initrd.img');
    outsideFile = path.join(root, 'outside', 'secret');
    fs.writeFileSync(outsideFile, 'secret');
    qemuBin = path.join(root, 'bin', 'qemu-system-x86_64');
    // Never run: the fake runner intercepts every launch.
    fs.writeFileSync(qemuBin, '#!/bin/sh\nexit 99\n', { mode: 0o755 });
    // The QEMUs the fake runner "starts" (pids the tests' pid files name), as the fake /proc shows them.
    for (const pid of [4321, 77, 78, 80, 81, 82]) fakeProcess(pid, { uid: OWNER.uid });
    fakeProcess(55, { uid: 0 });
    // The helper touches the owner's directories with the owner's rights, so they must be the owner's.
    if (IS_ROOT) spawnSync('chown', ['-R', `${OWNER.uid}:${OWNER.gid}`, root]);
    // QEMU is the host's: only root may change it (the tests' root directory is the owner's as well).
    if (IS_ROOT) {
      spawnSync('chown', ['0:0', root, path.join(root, 'bin'), qemuBin]);
      fs.chmodSync(root, 0o755);
    }
  });

  after(() => {
    fs.rmSync(root, { recursive: true, force: true });
  });

  beforeEach(() => {
    runner = new FakeProcessRunner();
    firewall = new FakeGuestFirewall();
    helper = new HelperService(runner, scope, { firewall });
  });

  /** A helper started for another namespace (`ip netns add` made testns; ghost does not exist). */
  const inNetns = (netns: string): HelperService => new HelperService(runner, { ...scope, network: { ...scope.network, netns } }, { firewall });

  describe('validateLaunchSpec', () => {
    it('accepts a spec inside banger directories and returns real paths', () => {
      const out = helper.validateLaunchSpec(spec());
      assert.deepEqual(out, spec());
      assert.equal(out.initrdPath, initrd);
    });

    it('accepts the QMP socket and pid file in the run directory', () => {
      const out = helper.validateLaunchSpec(spec({ qmpSocket: path.join(scope.runDir, 'q.sock'), pidFile: path.join(scope.runDir, 'q.pid') }));
      assert.equal(out.pidFile, path.join(scope.runDir, 'q.pid'));
    });

    it('refuses `..`, `.` and empty components, even when the path they make is inside', () => {
      for (const initrdPath of [`${vmDir}/../${VM_ID}/initrd.img`, `${vmDir}/./initrd.img`, `${vmDir}//initrd.img`]) {
        assert.throws(() => helper.validateLaunchSpec(spec({ initrdPath })), refused(/component/));
      }
    });

    it('refuses a symlinked directory below banger\'s directories, even to a directory inside them', () => {
      fs.symlinkSync(vmDir, path.join(scope.stateDir, 'vm-alias'));
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ initrdPath: path.join(scope.stateDir, 'vm-alias', 'initrd.img') })), refused(/passes through .*vm-alias, which is a symlink, not a directory/));
      } finally {
        fs.rmSync(path.join(scope.stateDir, 'vm-alias'));
      }
    });

    it('follows a symlink above banger\'s directories (a home reached through a link)', () => {
      const alias = path.join(root, 'alias');
      fs.symlinkSync(root, alias);
      try {
        const out = helper.validateLaunchSpec(spec({ initrdPath: path.join(alias, 'state', 'vms', VM_ID, 'initrd.img') }));
        assert.equal(out.initrdPath, initrd);
        assert.throws(() => helper.validateLaunchSpec(spec({ initrdPath: path.join(alias, 'outside', 'secret') })), refused(/outside/));
      } finally {
        fs.rmSync(alias);
      }
    });

    it('refuses a path that reaches banger\'s directories through a symlink from outside them', () => {
      const link = path.join(root, 'outside', 'into-state');
      fs.symlinkSync(vmDir, link);
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ initrdPath: path.join(link, 'initrd.img') })), refused(/through a symlink/));
      } finally {
        fs.rmSync(link);
      }
    });

    it('refuses a file that is not a regular file of the owner\'s: a FIFO, a device node, root\'s file', () => {
      const fifo = path.join(vmDir, 'fifo');
      spawnSync('mkfifo', [fifo]);
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: fifo })), refused(/is a FIFO, not a regular file/));
        assert.throws(() => helper.validateLaunchSpec(spec({ serialLog: fifo })), refused(/is a FIFO; banger writes only/));
      } finally {
        fs.rmSync(fifo);
      }
      if (!IS_ROOT) return;
      const device = path.join(vmDir, 'null');
      spawnSync('mknod', [device, 'c', '1', '3']);
      const rootsFile = path.join(vmDir, 'roots');
      fs.writeFileSync(rootsFile, 'root\'s');
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ disks: [{ id: 'root', path: device, format: 'raw' }] })), refused(/is a device node/));
        assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: rootsFile })), refused(/belongs to uid 0, not to uid 1000/));
      } finally {
        fs.rmSync(device);
        fs.rmSync(rootsFile);
      }
    });

    it('refuses a file outside the state and cache directories', () => {
      assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: outsideFile })), refused(/outside banger's directories/));
      assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: '/etc/passwd' })), refused(/outside/));
    });

    it('refuses a path that climbs out with `..`', () => {
      const climbing = path.join(scope.stateDir, 'vms', VM_ID) + '/../../../outside/secret';
      assert.throws(() => helper.validateLaunchSpec(spec({ disks: [{ id: 'root', path: climbing, format: 'raw' }] })), refused(/outside/));
    });

    it('refuses a symlink that points outside', () => {
      const link = path.join(scope.stateDir, 'sneaky');
      fs.symlinkSync(outsideFile, link);
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: link })), refused(/is a symlink/));
        assert.throws(() => helper.validateLaunchSpec(spec({ disks: [{ id: 'root', path: link, format: 'raw' }] })), refused(/is a symlink/));
      } finally {
        fs.rmSync(link);
      }
    });

    it('refuses a file in a symlinked directory that points outside', () => {
      const link = path.join(scope.cacheDir, 'sneaky-dir');
      fs.symlinkSync(path.dirname(outsideFile), link);
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: path.join(link, 'secret') })), refused(/which is a symlink, not a directory/));
        // The pid file may not be in the cache at all.
        assert.throws(() => helper.validateLaunchSpec(spec({ pidFile: path.join(link, 'qemu.pid') })), refused(/outside/));
      } finally {
        fs.rmSync(link);
      }
    });

    it('refuses an output file (pid file, serial log) that is itself a symlink', () => {
      const link = path.join(vmDir, 'evil.pid');
      fs.symlinkSync(outsideFile, link);
      try {
        assert.throws(() => helper.validateLaunchSpec(spec({ pidFile: link })), refused(/is a symlink/));
        assert.throws(() => helper.validateLaunchSpec(spec({ serialLog: link })), refused(/is a symlink/));
      } finally {
        fs.rmSync(link);
      }
    });

    it('refuses the serial log outside the state directory, even in the cache', () => {
      assert.throws(() => helper.validateLaunchSpec(spec({ serialLog: path.join(scope.cacheDir, 'serial.log') })), refused(/serial log/));
    });

    it('refuses paths with commas or spaces (QEMU option syntax), relative paths and missing files', () => {
      const comma = path.join(vmDir, 'a,b');
      fs.writeFileSync(comma, '');
      assert.throws(() => helper.validateLaunchSpec(spec({ initrdPath: comma })), refused(/without commas/));
      assert.throws(() => helper.validateLaunchSpec(spec({ serialLog: path.join(vmDir, 'serial.log,x=y') })), refused(/without commas/));
      assert.throws(() => helper.validateLaunchSpec(spec({ initrdPath: path.join(vmDir, 'has space') })), refused(/without commas or spaces/));
      assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: 'cache/kernels/vmlinuz' })), refused(/absolute path/));
      assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: path.join(scope.cacheDir, 'nope') })), refused(/does not exist/));
      assert.throws(() => helper.validateLaunchSpec(spec({ kernelPath: 42 as unknown as string })), refused(/must be a string/));
    });

    // Overrides are thunks: paths like `initrd` exist only once before() has run.
    for (const [what, overrides, pattern] of [
      ['vm id with capitals', () => ({ vmId: 'ABCDEF012345' }), /vm id/],
      ['vm id with a slash', () => ({ vmId: '../01234567' }), /vm id/],
      ['tap not named bgt…', () => ({ net: { tap: 'eth0', mac: '52:54:00:89:ab:cd' } }), /tap name/],
      ['tap with a suffix', () => ({ net: { tap: `${TAP}x`, mac: '52:54:00:89:ab:cd' } }), /tap name/],
      ['mac outside 52:54:00', () => ({ net: { tap: TAP, mac: '00:11:22:33:44:55' } }), /mac address/],
      ['mac with an option', () => ({ net: { tap: TAP, mac: '52:54:00:89:ab:cd,id=x' } }), /mac address/],
      ['cmdline with ;', () => ({ cmdline: 'console=ttyS0; reboot' }), /kernel command line/],
      ['cmdline with a quote', () => ({ cmdline: "init='/bin/sh'" }), /kernel command line/],
      ['cmdline with a newline', () => ({ cmdline: 'console=ttyS0\ninit=/bin/sh' }), /kernel command line/],
      ['zero vcpus', () => ({ vcpus: 0 }), /vcpus/],
      ['fractional vcpus', () => ({ vcpus: 1.5 }), /vcpus/],
      ['too little memory', () => ({ memoryMib: 32 }), /memory/],
      ['nine disks', () => ({ disks: Array.from({ length: 9 }, () => ({ id: 'root', path: initrd, format: 'raw' as const })) }), /at most 8/],
      ['a disk id with capitals', () => ({ disks: [{ id: 'Root', path: initrd, format: 'raw' as const }] }), /disk 0 id/],
    ] as const) {
      it(`refuses ${what}`, () => {
        assert.throws(() => helper.validateLaunchSpec(spec(overrides() as Partial<QemuLaunchSpec>)), refused(pattern));
      });
    }

    it('allows no network', () => {
      assert.equal(helper.validateLaunchSpec(spec({ net: null })).net, null);
    });
  });

  describe('ensureBridge', () => {
    it('creates, addresses and raises a missing bridge', async () => {
      fakeIp(runner);
      await helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null });
      assert.deepEqual(argvOf(runner.calls), [
        ['ip', 'link', 'show', 'dev', 'banger0'],
        ['ip', 'link', 'add', 'name', 'banger0', 'type', 'bridge'],
        ['ip', '-j', 'addr', 'show', 'dev', 'banger0'],
        ['ip', 'addr', 'add', '172.30.0.1/24', 'dev', 'banger0'],
        ['ip', 'link', 'set', 'dev', 'banger0', 'up'],
      ]);
    });

    it('leaves an existing, addressed bridge alone apart from raising it', async () => {
      fakeIp(runner, { links: ['banger0'], addrs: { banger0: ['172.30.0.1/24'] } });
      await helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null });
      assert.deepEqual(argvOf(runner.calls), [
        ['ip', 'link', 'show', 'dev', 'banger0'],
        ['ip', '-j', '-d', 'link', 'show', 'dev', 'banger0'],
        ['ip', '-j', 'addr', 'show', 'dev', 'banger0'],
        ['ip', 'link', 'set', 'dev', 'banger0', 'up'],
      ]);
    });

    it('runs every ip command inside the namespace, and raises lo there', async () => {
      fakeIp(runner);
      await inNetns('testns').ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: 'testns' });
      const argv = argvOf(runner.calls);
      for (const a of argv) assert.deepEqual(a.slice(0, 3), ['ip', '-n', 'testns']);
      assert.deepEqual(argv.map((a) => a.slice(3)), [
        ['link', 'show', 'dev', 'banger0'],
        ['link', 'add', 'name', 'banger0', 'type', 'bridge'],
        ['-j', 'addr', 'show', 'dev', 'banger0'],
        ['addr', 'add', '172.30.0.1/24', 'dev', 'banger0'],
        ['link', 'set', 'dev', 'banger0', 'up'],
        ['link', 'set', 'dev', 'lo', 'up'],
      ]);
    });

    it('reports a bridge it cannot create as NETWORK_FAILED', async () => {
      fakeIp(runner).fail('link add');
      await assert.rejects(helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null }), fails('NETWORK_FAILED', /cannot create bridge banger0/));
    });

    for (const [what, params, pattern] of [
      ['a bridge name with a semicolon', { bridge: 'br;reboot', gatewayCidr: '172.30.0.1/24', netns: null }, /bridge name/],
      ['a bridge name over 15 characters', { bridge: 'a-very-long-bridge', gatewayCidr: '172.30.0.1/24', netns: null }, /bridge name/],
      ['a gateway without a prefix', { bridge: 'banger0', gatewayCidr: '172.30.0.1', netns: null }, /gateway/],
      ['a gateway octet over 255', { bridge: 'banger0', gatewayCidr: '172.300.0.1/24', netns: null }, /gateway/],
      ['a /31 gateway', { bridge: 'banger0', gatewayCidr: '172.30.0.1/31', netns: null }, /gateway/],
      ['a bad namespace name', { bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: '../evil' }, /network namespace/],
    ] as const) {
      it(`refuses ${what} without running anything`, async () => {
        fakeIp(runner);
        await assert.rejects(helper.ensureBridge(params), refused(pattern));
        assert.equal(runner.calls.length, 0);
      });
    }

    it('reports a namespace that does not exist with a hint to create it', async () => {
      fakeIp(runner);
      await assert.rejects(inNetns('ghost').ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: 'ghost' }), (err: unknown) => {
        fails('NETWORK_FAILED', /ghost does not exist/)(err);
        assert.match((err as BangerError).hint!, /ip netns add ghost/);
        return true;
      });
      assert.equal(runner.calls.length, 0);
    });
  });

  describe('guest firewall and NAT', () => {
    it('ensureBridge isolates the bridge once it is up', async () => {
      fakeIp(runner);
      await helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null });
      assert.deepEqual(firewall.calls, [['isolate']]);
    });

    it('ensureBridge isolates nothing when the bridge cannot be made', async () => {
      fakeIp(runner).fail('link add');
      await assert.rejects(helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null }), fails('NETWORK_FAILED'));
      assert.deepEqual(firewall.calls, []);
    });

    it('enables, lists and disables NAT for a guest address in its subnet', async () => {
      await helper.natEnable({ ip: '172.30.0.2', bridge: 'banger0', netns: null });
      await helper.natEnable({ ip: '172.30.0.254', bridge: 'banger0', netns: null });
      assert.deepEqual(await helper.natList({ bridge: 'banger0', netns: null }), { ips: ['172.30.0.2', '172.30.0.254'] });
      await helper.natDisable({ ip: '172.30.0.2', bridge: 'banger0', netns: null });
      assert.deepEqual(await helper.natList({ bridge: 'banger0', netns: null }), { ips: ['172.30.0.254'] });
      await inNetns('testns').natEnable({ ip: '172.30.0.9', bridge: 'banger0', netns: 'testns' });
      assert.ok(firewall.natIps.has('172.30.0.9'));
    });

    for (const ip of ['10.0.0.5', '172.30.1.5', '172.30.0.0', '172.30.0.1', '172.30.0.255', '172.30.0.256', '172.30.0.05', '172.30.0', '172.30.0.5/32', '172.30.0.5; flush ruleset', ' 172.30.0.5', '']) {
      it(`refuses guest address ${JSON.stringify(ip)} without touching the firewall`, async () => {
        await assert.rejects(helper.natEnable({ ip, bridge: 'banger0', netns: null }), refused(/guest address/));
        await assert.rejects(helper.natDisable({ ip, bridge: 'banger0', netns: null }), refused(/guest address/));
        assert.deepEqual(firewall.calls, []);
      });
    }

    it('refuses another bridge or namespace for NAT, before touching the firewall', async () => {
      await assert.rejects(helper.natEnable({ ip: '172.30.0.5', bridge: 'docker0', netns: null }), refused(/manages bridge banger0, not docker0/));
      await assert.rejects(helper.natEnable({ ip: '172.30.0.5', bridge: 'banger0', netns: 'testns' }), refused(/network namespace/));
      await assert.rejects(helper.natDisable({ ip: '172.30.0.5', bridge: 'banger0', netns: 'testns' }), refused(/network namespace/));
      await assert.rejects(helper.natList({ bridge: 'br1', netns: null }), refused(/manages bridge banger0, not br1/));
      await assert.rejects(inNetns('ghost').natEnable({ ip: '172.30.0.5', bridge: 'banger0', netns: 'ghost' }), fails('NETWORK_FAILED', /ghost does not exist/));
      assert.deepEqual(firewall.calls, []);
    });

    it('treats NAT in a namespace that is gone as already removed', async () => {
      await inNetns('ghost').natDisable({ ip: '172.30.0.5', bridge: 'banger0', netns: 'ghost' });
      assert.deepEqual(await inNetns('ghost').natList({ bridge: 'banger0', netns: 'ghost' }), { ips: [] });
      assert.deepEqual(firewall.calls, []);
    });
  });

  describe('network scope', () => {
    const outOfScope = (pattern: RegExp) => (err: unknown) => {
      refused(pattern)(err);
      assert.match((err as BangerError).hint!, /banger daemon stop && banger daemon start/);
      return true;
    };

    it('refuses a bridge, gateway or namespace other than the ones it was started for, before running anything', async () => {
      fakeIp(runner, { links: ['docker0'] });
      await assert.rejects(helper.ensureBridge({ bridge: 'docker0', gatewayCidr: '172.30.0.1/24', netns: null }), outOfScope(/manages bridge banger0, not docker0/));
      await assert.rejects(helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '10.0.0.1/24', netns: null }), outOfScope(/manages gateway 172.30.0.1\/24, not 10.0.0.1\/24/));
      await assert.rejects(helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: 'testns' }), outOfScope(/network namespace \(none: the host namespace\), not testns/));
      await assert.rejects(inNetns('testns').ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null }), outOfScope(/network namespace testns, not \(none/));
      await assert.rejects(helper.createTap({ tap: TAP, bridge: 'docker0', netns: null }), outOfScope(/bridge/));
      await assert.rejects(helper.deleteTap({ tap: TAP, netns: 'testns' }), outOfScope(/network namespace/));
      assert.equal(runner.calls.length, 0);
    });

    it('will not take over a device of that name that is not a bridge', async () => {
      fakeIp(runner, { links: ['banger0'], kinds: { banger0: 'none' } });
      await assert.rejects(helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null }), fails('NETWORK_FAILED', /banger0 exists and is not a bridge/));
      runner.calls.length = 0;
      fakeIp(runner, { links: ['banger0'], kinds: { banger0: 'veth' } });
      await assert.rejects(helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null }), fails('NETWORK_FAILED', /\(veth\)/));
      assert.ok(!argvOf(runner.calls).some((a) => a.includes('addr') && a.includes('add')), 'an address was added to a device that is not a bridge');
    });
  });

  describe('createTap / deleteTap', () => {
    it('creates a tap owned by the owner and attaches it to the bridge', async () => {
      const ip = fakeIp(runner, { links: ['banger0'] });
      await helper.createTap({ tap: TAP, bridge: 'banger0', netns: null });
      assert.deepEqual(argvOf(runner.calls), [
        ['ip', 'link', 'show', 'dev', TAP],
        ['ip', 'tuntap', 'add', 'dev', TAP, 'mode', 'tap', 'user', String(OWNER.uid), 'group', String(OWNER.gid)],
        ['ip', 'link', 'set', 'dev', TAP, 'master', 'banger0', 'up'],
      ]);
      assert.ok(ip.links.has(TAP));
    });

    it('replaces a leftover tap of the same name', async () => {
      fakeIp(runner, { links: ['banger0', TAP] });
      await inNetns('testns').createTap({ tap: TAP, bridge: 'banger0', netns: 'testns' });
      assert.deepEqual(argvOf(runner.calls).map((a) => a.slice(0, 6)), [
        ['ip', '-n', 'testns', 'link', 'show', 'dev'],
        ['ip', '-n', 'testns', '-j', '-d', 'link'],
        ['ip', '-n', 'testns', 'link', 'del', 'dev'],
        ['ip', '-n', 'testns', 'tuntap', 'add', 'dev'],
        ['ip', '-n', 'testns', 'link', 'set', 'dev'],
      ]);
    });

    it('removes the tap again when it cannot be attached', async () => {
      const ip = fakeIp(runner, { links: ['banger0'] });
      ip.fail('link set');
      await assert.rejects(helper.createTap({ tap: TAP, bridge: 'banger0', netns: null }), fails('NETWORK_FAILED', /cannot attach tap/));
      assert.deepEqual(argvOf(runner.calls).at(-1), ['ip', 'link', 'del', 'dev', TAP]);
      assert.equal(ip.links.has(TAP), false);
    });

    it('reports a tap it cannot create as NETWORK_FAILED', async () => {
      fakeIp(runner, { links: ['banger0'] }).fail('tuntap');
      await assert.rejects(helper.createTap({ tap: TAP, bridge: 'banger0', netns: null }), fails('NETWORK_FAILED', /cannot create tap/));
    });

    for (const tap of ['eth0', 'bgt', 'bgtXYZ12345', 'bgt0123456789abc', 'bgt01234567;x']) {
      it(`refuses tap name ${JSON.stringify(tap)} without running anything`, async () => {
        fakeIp(runner);
        await assert.rejects(helper.createTap({ tap, bridge: 'banger0', netns: null }), refused(/tap name/));
        await assert.rejects(helper.deleteTap({ tap, netns: null }), refused(/tap name/));
        assert.equal(runner.calls.length, 0);
      });
    }

    it('refuses to create a tap in a missing namespace', async () => {
      fakeIp(runner);
      await assert.rejects(inNetns('ghost').createTap({ tap: TAP, bridge: 'banger0', netns: 'ghost' }), fails('NETWORK_FAILED'));
      assert.equal(runner.calls.length, 0);
    });

    it('treats a tap in a namespace that is gone as already deleted, so VMs can still be deleted', async () => {
      fakeIp(runner);
      await inNetns('ghost').deleteTap({ tap: TAP, netns: 'ghost' });
      assert.equal(runner.calls.length, 0);
      await assert.rejects(helper.deleteTap({ tap: TAP, netns: 'bad name!' }), refused(/network namespace/));
    });

    it('deletes an existing tap, in the namespace when given', async () => {
      const ip = fakeIp(runner, { links: [TAP] });
      await inNetns('testns').deleteTap({ tap: TAP, netns: 'testns' });
      assert.deepEqual(argvOf(runner.calls), [
        ['ip', '-n', 'testns', 'link', 'show', 'dev', TAP],
        ['ip', '-n', 'testns', '-j', '-d', 'link', 'show', 'dev', TAP],
        ['ip', '-n', 'testns', 'link', 'del', 'dev', TAP],
      ]);
      assert.equal(ip.links.has(TAP), false);
    });

    describe("only the owner's own taps", () => {
      const other = { uid: OWNER.uid + 1, gid: OWNER.gid + 1 };
      /** HELPER_REFUSED with `pattern` and a hint, and the device is still there. */
      const notOurs = (pattern: RegExp) => fails('HELPER_REFUSED', pattern, { hint: true });

      for (const [what, details, pattern] of [
        ["another user's tap", tapOf(other), new RegExp(`tap ${TAP} belongs to uid ${other.uid}, not to uid ${OWNER.uid}`)],
        ['a tap made for no user', { linkinfo: { info_kind: 'tun', info_data: { type: 'tap' } } }, /belongs to no user/],
        ['a tun-mode device', { linkinfo: { info_kind: 'tun', info_data: { type: 'tun', user: OWNER.uid } } }, new RegExp(`${TAP} is a tun device, not a tap`)],
        ['a veth with a tap-like name', { linkinfo: { info_kind: 'veth' } }, new RegExp(`${TAP} is a veth device, not a tap`)],
        ['a plain device with a tap-like name', {}, new RegExp(`${TAP} is a plain device, not a tap`)],
        ["the owner's tap on another bridge", tapOf(OWNER, 'other0'), new RegExp(`tap ${TAP} is on bridge other0, not on banger0`)],
      ] as const satisfies ReadonlyArray<readonly [string, LinkDetails, RegExp]>) {
        it(`refuses to delete or replace ${what}, and deletes nothing`, async () => {
          const ip = fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: details } });
          await assert.rejects(helper.deleteTap({ tap: TAP, netns: null }), notOurs(pattern));
          await assert.rejects(inNetns('testns').deleteTap({ tap: TAP, netns: 'testns' }), (err: unknown) => {
            notOurs(/ in netns testns /)(err);
            assert.match((err as BangerError).message.replace(' in netns testns', ''), pattern);
            return true;
          });
          await assert.rejects(helper.createTap({ tap: TAP, bridge: 'banger0', netns: null }), notOurs(pattern));
          assert.ok(ip.links.has(TAP));
          assert.ok(!argvOf(runner.calls).some((a) => a.includes('del') || a.includes('tuntap')), 'a device that is not the owner\'s tap was touched');
        });
      }

      it("deletes and replaces the owner's tap, on this helper's bridge or on none", async () => {
        for (const details of [tapOf(OWNER, 'banger0'), tapOf(OWNER)]) {
          const ip = fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: details } });
          await helper.deleteTap({ tap: TAP, netns: null });
          assert.equal(ip.links.has(TAP), false);
          fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: details } });
          await helper.createTap({ tap: TAP, bridge: 'banger0', netns: null });
          assert.deepEqual(argvOf(runner.calls).slice(-4).map((a) => a.slice(0, 3)), [['ip', '-j', '-d'], ['ip', 'link', 'del'], ['ip', 'tuntap', 'add'], ['ip', 'link', 'set']]);
        }
      });

      it("reads the owner's uid from sysfs when ip prints a user name, in the tap's namespace", async () => {
        const named = { linkinfo: { info_kind: 'tun', info_data: { type: 'tap', user: 'someone', group: 'someone' } } };
        let ip = fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: named }, sysfsOwner: { [TAP]: OWNER.uid } });
        await helper.deleteTap({ tap: TAP, netns: null });
        assert.equal(ip.links.has(TAP), false);
        ip = fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: named }, sysfsOwner: { [TAP]: OWNER.uid } });
        await inNetns('testns').deleteTap({ tap: TAP, netns: 'testns' });
        assert.ok(argvOf(runner.calls).some((a) => a.join(' ') === `ip netns exec testns cat /sys/class/net/${TAP}/owner`));
        ip = fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: named }, sysfsOwner: { [TAP]: OWNER.uid + 1 } });
        await assert.rejects(helper.deleteTap({ tap: TAP, netns: null }), fails('HELPER_REFUSED', new RegExp(`belongs to uid ${OWNER.uid + 1}`), { hint: true }));
        assert.ok(ip.links.has(TAP));
      });

      it('passes a tap it made itself, as ip reports it, on the next replace', async () => {
        const ip = fakeIp(runner, { links: ['banger0'] });
        await helper.createTap({ tap: TAP, bridge: 'banger0', netns: null });
        await helper.createTap({ tap: TAP, bridge: 'banger0', netns: null });
        await helper.deleteTap({ tap: TAP, netns: null });
        assert.equal(ip.links.has(TAP), false);
      });
    });

    it('deleting a tap that is not there succeeds without deleting anything', async () => {
      fakeIp(runner);
      await helper.deleteTap({ tap: TAP, netns: null });
      assert.deepEqual(argvOf(runner.calls), [['ip', 'link', 'show', 'dev', TAP]]);
    });
  });

  describe('resolveQemu', () => {
    it('accepts an executable qemu-system-* at an absolute path', () => {
      assert.equal(helper.resolveQemu(qemuBin), qemuBin);
    });

    it('looks a bare name up on PATH', () => {
      const saved = process.env.PATH;
      process.env.PATH = `${path.join(root, 'nothing-here')}:${path.dirname(qemuBin)}`;
      try {
        assert.equal(helper.resolveQemu('qemu-system-x86_64'), qemuBin);
        assert.throws(() => helper.resolveQemu('qemu-system-aarch64'), fails('MISSING_TOOL'));
      } finally {
        process.env.PATH = saved;
      }
    });

    it('reports a qemu-system-* that is not executable as MISSING_TOOL', () => {
      const plain = path.join(root, 'bin', 'qemu-system-riscv64');
      fs.writeFileSync(plain, '', { mode: 0o644 });
      assert.throws(() => helper.resolveQemu(plain), fails('MISSING_TOOL', /not installed/));
    });

    it("refuses a qemu-system-* that someone other than root could replace", { skip: !IS_ROOT && 'needs root to own the real one' }, () => {
      const ownersBin = path.join(scope.stateDir, 'bin');
      fs.mkdirSync(ownersBin, { recursive: true });
      const ownersQemu = path.join(ownersBin, 'qemu-system-x86_64');
      fs.copyFileSync(qemuBin, ownersQemu);
      fs.chmodSync(ownersQemu, 0o755);
      spawnSync('chown', ['-R', `${OWNER.uid}:${OWNER.gid}`, ownersBin]);
      const writable = path.join(root, 'bin', 'qemu-system-aarch64');
      fs.copyFileSync(qemuBin, writable);
      fs.chmodSync(writable, 0o777);
      try {
        assert.throws(() => helper.resolveQemu(ownersQemu), refused(new RegExp(`not a program of the host's: .* belongs to uid ${OWNER.uid}`)));
        assert.throws(() => helper.resolveQemu(writable), refused(/is writable by others \(mode 777\)/));
      } finally {
        fs.rmSync(ownersBin, { recursive: true });
        fs.rmSync(writable);
      }
    });

    for (const name of ['bash', '/bin/sh', '/usr/bin/qemu-img', 'qemu-system-x86_64 -x', 'qemu-system-$(id)', '', 7]) {
      it(`refuses ${JSON.stringify(name)}`, () => {
        assert.throws(() => helper.resolveQemu(name), refused());
      });
    }
  });

  describe('launchQemu', () => {
    /** Fake QEMU: writes the pid file named on its command line, as -daemonize does. */
    const writesPid = (pid: string) => ({ args }: FakeCall) => {
      fs.writeFileSync(args[args.indexOf('-pidfile') + 1]!, pid);
      return { code: 0 };
    };

    beforeEach(() => {
      fs.rmSync(path.join(vmDir, 'qemu.pid'), { force: true });
    });

    it('enters the namespace as root, then drops to the owner with setpriv, and returns the pid', async () => {
      runner.on('ip', writesPid('4321\n'));
      const result = await inNetns('testns').launchQemu({ qemu: qemuBin, spec: spec(), netns: 'testns' }, { signal: new AbortController().signal });
      assert.deepEqual(result, { pid: 4321 });
      assert.equal(runner.calls.length, 1);
      const [call] = runner.calls;
      assert.deepEqual([call!.command, ...call!.args], [
        'ip', 'netns', 'exec', 'testns',
        'setpriv', `--reuid=${OWNER.uid}`, `--regid=${OWNER.gid}`, '--init-groups', '--',
        qemuBin, ...buildQemuArgv(spec()),
      ]);
    });

    it('without a namespace starts setpriv directly', async () => {
      runner.on('setpriv', writesPid('77'));
      assert.deepEqual(await helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }), { pid: 77 });
      assert.equal(runner.calls[0]!.command, 'setpriv');
      assert.equal(runner.calls[0]!.args.at(-(buildQemuArgv(spec()).length + 1)), qemuBin);
    });

    it('for a root owner runs QEMU itself, without setpriv', { skip: !IS_ROOT && 'chown to uid 0 needs root' }, async () => {
      const rootHelper = new HelperService(runner, { ...scope, owner: { uid: 0, gid: 0 } });
      runner.on(qemuBin, writesPid('55'));
      // A root owner's files are root's.
      spawnSync('chown', ['-R', '0:0', scope.stateDir, scope.cacheDir]);
      try {
        assert.deepEqual(await rootHelper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }), { pid: 55 });
      } finally {
        spawnSync('chown', ['-R', `${OWNER.uid}:${OWNER.gid}`, scope.stateDir, scope.cacheDir]);
      }
      assert.deepEqual(argvOf(runner.calls), [[qemuBin, ...buildQemuArgv(spec())]]);
    });

    it('passes the caller signal and a timeout to the runner', async () => {
      runner.on('setpriv', writesPid('78'));
      const signal = new AbortController().signal;
      await helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal });
      assert.equal(runner.calls[0]!.options.signal, signal);
      assert.ok((runner.calls[0]!.options.timeoutMs ?? 0) > 0);
    });

    it('removes a stale pid file before launching', async () => {
      fs.writeFileSync(spec().pidFile, '999');
      let seenStale = true;
      runner.on('setpriv', (call) => {
        seenStale = fs.existsSync(spec().pidFile);
        return writesPid('80')(call);
      });
      await helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal });
      assert.equal(seenStale, false);
    });

    it('reports QEMU failing to start as VMM_FAILED with its stderr', async () => {
      runner.on('setpriv', () => ({ code: 1, stderr: 'qemu-system-x86_64: -netdev tap: could not open /dev/net/tun\n' }));
      await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }), fails('VMM_FAILED', /could not open \/dev\/net\/tun/));
    });

    it('reports an unusable pid file as VMM_FAILED', async () => {
      runner.on('setpriv', writesPid('not-a-pid'));
      await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }), fails('VMM_FAILED', /no usable pid/));
    });

    it('reports a missing pid file as VMM_FAILED', {
    }, async () => {
      runner.on('setpriv', () => ({ code: 0 }));
      await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }), fails('VMM_FAILED'));
    });

    for (const [what, pid, setUp, pattern] of [
      ['pid 1', 1, () => undefined, /process 1, which is not banger's/],
      ['a process that is gone', 999_999, () => undefined, /no such process/],
      ['a process of another uid', 90, () => fakeProcess(90, { uid: OWNER.uid + 1 }), /does not run as uid/],
      ['a process that is not QEMU', 91, () => fakeProcess(91, { uid: OWNER.uid, exe: '/usr/bin/sleep' }), /runs sleep, not QEMU/],
      ["another VM's QEMU", 92, () => fakeProcess(92, { uid: OWNER.uid, name: 'banger-ffffffffffff' }), /not the QEMU of VM/],
    ] as const) {
      it(`refuses a pid file that names ${what}`, async () => {
        setUp();
        runner.on('setpriv', writesPid(`${pid}\n`));
        await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }), refused(pattern));
      });
    }

    describe("the VM's tap", () => {
      const withTap = (): QemuLaunchSpec => spec({ net: { tap: TAP, mac: '52:54:00:89:ab:cd' } });

      it("launches with the owner's tap on the helper's bridge", async () => {
        fakeIp(runner, { links: ['banger0', TAP], details: { [TAP]: tapOf(OWNER, 'banger0') } });
        runner.on('ip', writesPid('4321\n'));
        assert.deepEqual(await inNetns('testns').launchQemu({ qemu: qemuBin, spec: withTap(), netns: 'testns' }, { signal: new AbortController().signal }), { pid: 4321 });
        assert.deepEqual(argvOf(runner.calls).slice(0, 2), [['ip', '-n', 'testns', 'link', 'show', 'dev', TAP], ['ip', '-n', 'testns', '-j', '-d', 'link', 'show', 'dev', TAP]]);
        assert.ok(runner.calls[2]!.args.includes(`tap,id=net0,ifname=${TAP},script=no,downscript=no`));
      });

      for (const [what, links, details, pattern] of [
        ['a missing tap', [], {}, /tap bgt0123456789ab does not exist/],
        ["another user's tap", [TAP], { [TAP]: tapOf({ uid: OWNER.uid + 1, gid: OWNER.gid }) }, /belongs to uid/],
        ['a veth with a tap-like name', [TAP], { [TAP]: { linkinfo: { info_kind: 'veth' } } }, /is a veth device, not a tap/],
        ["the owner's tap on another bridge", [TAP], { [TAP]: tapOf(OWNER, 'other0') }, /is on bridge other0/],
      ] as const satisfies ReadonlyArray<readonly [string, string[], Record<string, LinkDetails>, RegExp]>) {
        it(`refuses ${what} before starting QEMU`, async () => {
          fakeIp(runner, { links: [...links], details });
          runner.on('ip', writesPid('4321\n'));
          await assert.rejects(inNetns('testns').launchQemu({ qemu: qemuBin, spec: withTap(), netns: 'testns' }, { signal: new AbortController().signal }), refused(pattern));
          assert.equal(runner.callsTo('ip').length, 0, 'QEMU was started');
        });
      }
    });

    it('refuses a VM id that has no directory in the state directory', async () => {
      await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec({ vmId: 'abcdef012345' }), netns: null }, { signal: new AbortController().signal }), refused(/vm id abcdef012345 is not a VM of this owner's/));
      assert.equal(runner.calls.length, 0);
    });

    it('does not follow a symlink the owner put in place of the pid file', {
      skip: !IS_ROOT && 'needs root to observe a chown',
    }, async () => {
      const victim = path.join(root, 'outside', 'victim');
      fs.writeFileSync(victim, '4321\n');
      fs.chownSync(victim, 0, 0);
      // QEMU runs as the owner, so the owner can replace its pid file between QEMU writing it and the helper reading it.
      runner.on('setpriv', ({ args }) => {
        fs.symlinkSync(victim, args[args.indexOf('-pidfile') + 1]!);
        return { code: 0 };
      });
      await helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal }).catch(() => undefined);
      assert.equal(fs.statSync(victim).uid, 0, 'a root-owned file outside banger was chowned to the owner');
    });

    it('refuses a bad spec, binary or namespace before running anything', async () => {
      const signal = new AbortController().signal;
      await assert.rejects(helper.launchQemu({ qemu: '/bin/sh', spec: spec(), netns: null }, { signal }), refused());
      await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec({ kernelPath: outsideFile }), netns: null }, { signal }), refused());
      await assert.rejects(inNetns('ghost').launchQemu({ qemu: qemuBin, spec: spec(), netns: 'ghost' }, { signal }), fails('NETWORK_FAILED'));
      await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: 'testns' }, { signal }), refused(/manages network namespace/));
      assert.equal(runner.calls.length, 0);
    });
  });

  describe('request params', () => {
    const ctx = { signal: new AbortController().signal, progress: () => undefined };
    let shutdowns: number;
    const call = (method: string, params: unknown): Promise<unknown> => {
      shutdowns = 0;
      return helper.handlers(() => shutdowns++).get(method)!(params, ctx);
    };
    /** HELPER_REFUSED naming the method and the field, with a hint, and nothing run. */
    const refusedField = (method: string, field: RegExp) => (err: unknown) => {
      fails('HELPER_REFUSED', new RegExp(`^bangerd-root refused: ${method.replace('.', '\\.')}: .*${field.source}`), { hint: true })(err);
      assert.match((err as BangerError).hint!, /bangerd and bangerd-root disagree on this request/);
      return true;
    };
    const valid = (): Record<string, Record<string, unknown>> => ({
      'helper.ping': {},
      'net.ensureBridge': { bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null },
      'net.createTap': { tap: TAP, bridge: 'banger0', netns: null },
      'net.deleteTap': { tap: TAP, netns: null },
      'net.natEnable': { ip: '172.30.0.5', bridge: 'banger0', netns: null },
      'net.natDisable': { ip: '172.30.0.5', bridge: 'banger0', netns: null },
      'net.natList': { bridge: 'banger0', netns: null },
      'vmm.launchQemu': { qemu: qemuBin, spec: spec(), netns: null },
      'image.build': { name: 'debian-bookworm', mirror: 'http://deb.debian.org/debian', output: path.join(scope.cacheDir, 'x.ext4') },
      'helper.shutdown': {},
    });
    // A field of each method given the wrong type (thunks: paths exist only once before() has run).
    const wrongTypes: Record<string, [() => unknown, RegExp]> = {
      'helper.ping': [() => 'ping', /params must be an object \(got string\)/],
      'net.ensureBridge': [() => ({ ...valid()['net.ensureBridge'], bridge: 7 }), /bridge must be a string \(got number\)/],
      'net.createTap': [() => ({ ...valid()['net.createTap'], netns: ['testns'] }), /netns must be a string \(got a list\)/],
      'net.deleteTap': [() => ({ netns: null }), /tap is required/],
      'net.natEnable': [() => ({ ...valid()['net.natEnable'], ip: 172 }), /ip must be a string \(got number\)/],
      'net.natDisable': [() => ({ bridge: 'banger0', netns: null }), /ip is required/],
      'net.natList': [() => ({ bridge: 'banger0', netns: 7 }), /netns must be a string \(got number\)/],
      'vmm.launchQemu': [() => ({ ...valid()['vmm.launchQemu'], spec: { ...spec(), vcpus: '2' } }), /spec\.vcpus must be a number \(got string\)/],
      'image.build': [() => ({ ...valid()['image.build'], output: { path: '/x' } }), /output must be a string \(got an object\)/],
      'helper.shutdown': [() => [], /params must be an object \(got a list\)/],
    };

    for (const method of ['helper.ping', 'net.ensureBridge', 'net.createTap', 'net.deleteTap', 'net.natEnable', 'net.natDisable', 'net.natList', 'vmm.launchQemu', 'image.build', 'helper.shutdown']) {
      it(`${method}: refuses null params, a field of the wrong type and an unknown field, before doing anything`, async () => {
        fakeIp(runner);
        await assert.rejects(call(method, null), refusedField(method, /params must be an object \(got null\)/));
        await assert.rejects(call(method, undefined), refusedField(method, /params is required/));
        const [wrong, pattern] = wrongTypes[method]!;
        await assert.rejects(call(method, wrong()), refusedField(method, pattern));
        await assert.rejects(call(method, { ...valid()[method], extra: 1 }), refusedField(method, /unknown field "extra"/));
        assert.equal(runner.calls.length, 0);
        assert.deepEqual(firewall.calls, []);
        assert.equal(shutdowns, 0);
      });
    }

    it('names a nested unknown field and a value outside a fixed set', async () => {
      const disks = [{ id: 'root', path: initrd, format: 'raw', cache: 'unsafe' }];
      await assert.rejects(call('vmm.launchQemu', { ...valid()['vmm.launchQemu'], spec: { ...spec(), disks } }), refusedField('vmm.launchQemu', /unknown field "cache" in spec\.disks\[0\]/));
      await assert.rejects(call('vmm.launchQemu', { ...valid()['vmm.launchQemu'], spec: { ...spec(), accel: 'hvf' } }), refusedField('vmm.launchQemu', /spec\.accel must be one of "kvm", "tcg" \(got "hvf"\)/));
      // A format QEMU would probe (and so let a guest's disk pick its own format) is refused by the schema.
      const vmdk = [{ id: 'root', path: initrd, format: 'vmdk' }];
      await assert.rejects(call('vmm.launchQemu', { ...valid()['vmm.launchQemu'], spec: { ...spec(), disks: vmdk } }), refusedField('vmm.launchQemu', /spec\.disks\[0\]\.format must be one of "raw", "qcow2" \(got "vmdk"\)/));
      await assert.rejects(call('vmm.launchQemu', { qemu: qemuBin, spec: spec() }), refusedField('vmm.launchQemu', /netns is required/));
      assert.equal(runner.calls.length, 0);
    });

    it('passes valid params on to the work', async () => {
      fakeIp(runner);
      const pong = (await call('helper.ping', {})) as { pid: number; network: unknown };
      assert.equal(pong.pid, process.pid);
      assert.deepEqual(pong.network, scope.network);
      await call('net.ensureBridge', valid()['net.ensureBridge']);
      assert.ok(runner.calls.length > 0);
      assert.deepEqual(await call('helper.shutdown', {}), { ok: true });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(shutdowns, 1);
    });
  });

  describe('files that do not exist yet', () => {
    const ctx = { signal: new AbortController().signal, progress: () => undefined };
    /** Makes `link` a symlink to `target` for the test, as the owner could. */
    const withSymlink = async (link: string, target: string, fn: () => Promise<void> | void): Promise<void> => {
      fs.rmSync(link, { force: true });
      fs.symlinkSync(target, link);
      try {
        await fn();
      } finally {
        fs.rmSync(link, { force: true });
      }
    };

    for (const field of ['serialLog', 'pidFile', 'qmpSocket', 'agentSocket'] as const) {
      it(`refuses a ${field} that is a dangling symlink, and creates nothing at its target`, async () => {
        const target = path.join(root, 'outside', `created-by-qemu-${field}`);
        await withSymlink(path.join(vmDir, `${field}-link`), target, async () => {
          const link = path.join(vmDir, `${field}-link`);
          assert.throws(() => helper.validateLaunchSpec(spec({ [field]: link })), refused(/is a symlink/));
          await assert.rejects(helper.launchQemu({ qemu: qemuBin, spec: spec({ [field]: link }), netns: null }, ctx), refused(/is a symlink/));
        });
        assert.equal(fs.existsSync(target), false);
        assert.equal(runner.calls.length, 0);
      });

      it(`refuses a ${field} that is a symlink to an existing file, inside banger's directories or not`, async () => {
        for (const target of [outsideFile, initrd]) {
          await withSymlink(path.join(vmDir, `${field}-link`), target, () => {
            assert.throws(() => helper.validateLaunchSpec(spec({ [field]: path.join(vmDir, `${field}-link`) })), refused(/is a symlink/));
          });
        }
        assert.equal(fs.readFileSync(outsideFile, 'utf8'), 'secret');
      });
    }

    it('refuses a file path that names a directory, or whose directory does not exist', () => {
      assert.throws(() => helper.validateLaunchSpec(spec({ serialLog: `${vmDir}/` })), refused(/must name a file/));
      assert.throws(() => helper.validateLaunchSpec(spec({ serialLog: vmDir })), refused(/is a directory/));
      assert.throws(() => helper.validateLaunchSpec(spec({ pidFile: path.join(vmDir, 'missing-dir', 'qemu.pid') })), refused(/directory of pid file .* does not exist/));
    });

    it('refuses an image output that is a symlink, dangling or to an existing file, before building', async () => {
      const images = path.join(scope.cacheDir, 'images');
      fs.mkdirSync(images, { recursive: true });
      const link = path.join(images, 'debian.ext4');
      for (const target of [path.join(root, 'outside', 'image-by-cp'), outsideFile, kernel]) {
        await withSymlink(link, target, async () => {
          await assert.rejects(helper.buildImage({ name: 'debian-bookworm', mirror: 'http://deb.debian.org/debian', output: link }, ctx), refused(/image output .* is a symlink/));
        });
      }
      assert.equal(fs.existsSync(path.join(root, 'outside', 'image-by-cp')), false);
      assert.equal(runner.calls.length, 0);
    });

    it('gives QEMU a fresh, empty serial log of the owner and no pid file or socket from the last boot', async () => {
      fs.writeFileSync(spec().serialLog, 'the last boot\n');
      fs.writeFileSync(spec().qmpSocket, 'stale socket');
      fs.writeFileSync(spec().pidFile, '999\n');
      let seen: { log: fs.Stats; socket: boolean; pid: boolean } | null = null;
      runner.on('setpriv', (c) => {
        seen = { log: fs.lstatSync(spec().serialLog), socket: fs.existsSync(spec().qmpSocket), pid: fs.existsSync(spec().pidFile) };
        fs.writeFileSync(c.args[c.args.indexOf('-pidfile') + 1]!, '81\n');
        return { code: 0 };
      });
      await helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, ctx);
      assert.ok(seen);
      const { log, socket, pid } = seen as { log: fs.Stats; socket: boolean; pid: boolean };
      assert.ok(log.isFile());
      assert.equal(log.size, 0);
      assert.equal(log.uid, OWNER.uid);
      assert.equal(log.mode & 0o777, 0o600);
      assert.equal(socket, false);
      assert.equal(pid, false);
    });
  });

  describe('taps in use', () => {
    /** A process in the fake /proc with `tap` attached, as the kernel shows a tun descriptor. */
    const attach = (pid: string, tap: string): void => {
      fs.rmSync(path.join(scope.procDir, pid), { recursive: true, force: true });
      fs.mkdirSync(path.join(scope.procDir, pid, 'fd'), { recursive: true });
      fs.mkdirSync(path.join(scope.procDir, pid, 'fdinfo'), { recursive: true });
      fs.symlinkSync('/dev/net/tun', path.join(scope.procDir, pid, 'fd', '12'));
      fs.writeFileSync(path.join(scope.procDir, pid, 'fdinfo', '12'), `pos:\t0\nflags:\t0102002\niff:\t${tap}\n`);
    };
    const inUse = (err: unknown): boolean => {
      fails('HELPER_REFUSED', new RegExp(`tap ${TAP} is attached to running process 7777`))(err);
      assert.equal((err as BangerError).hint, 'stop its VM first (banger vm stop)');
      return true;
    };

    beforeEach(() => attach('7777', TAP));
    after(() => fs.rmSync(path.join(scope.procDir, '7777'), { recursive: true, force: true }));

    it('refuses to delete a tap a live process has attached, and deletes nothing', async () => {
      const ip = fakeIp(runner, { links: [TAP] });
      await assert.rejects(helper.deleteTap({ tap: TAP, netns: null }), inUse);
      await assert.rejects(inNetns('testns').deleteTap({ tap: TAP, netns: 'testns' }), inUse);
      assert.ok(ip.links.has(TAP));
      assert.ok(!argvOf(runner.calls).some((a) => a.includes('del')));
    });

    it('refuses to replace a same-named tap a live process has attached', async () => {
      const ip = fakeIp(runner, { links: ['banger0', TAP] });
      await assert.rejects(helper.createTap({ tap: TAP, bridge: 'banger0', netns: null }), inUse);
      assert.ok(ip.links.has(TAP));
      assert.deepEqual(argvOf(runner.calls), [['ip', 'link', 'show', 'dev', TAP], ['ip', '-j', '-d', 'link', 'show', 'dev', TAP]]);
    });

    it('deletes the tap once that process is gone', async () => {
      fs.rmSync(path.join(scope.procDir, '7777'), { recursive: true, force: true });
      const ip = fakeIp(runner, { links: [TAP] });
      await helper.deleteTap({ tap: TAP, netns: null });
      assert.equal(ip.links.has(TAP), false);
    });
  });

  describe('children and the helper’s death', () => {
    it('runs every ip command under setpriv --pdeathsig KILL', async () => {
      fakeIp(runner);
      await helper.ensureBridge({ bridge: 'banger0', gatewayCidr: '172.30.0.1/24', netns: null });
      await helper.createTap({ tap: TAP, bridge: 'banger0', netns: null });
      await helper.deleteTap({ tap: TAP, netns: null });
      assert.ok(runner.calls.length >= 6);
      for (const c of runner.calls) assert.deepEqual([c.command, ...c.args].slice(0, 5), [...DEATH_SIGNAL, 'ip']);
    });

    it('launches QEMU, which daemonizes and must outlive the helper, with no death signal', async () => {
      runner.on('setpriv', ({ args }) => {
        fs.writeFileSync(args[args.indexOf('-pidfile') + 1]!, '82\n');
        return { code: 0 };
      });
      await helper.launchQemu({ qemu: qemuBin, spec: spec(), netns: null }, { signal: new AbortController().signal });
      const argv = [runner.calls[0]!.command, ...runner.calls[0]!.args];
      assert.ok(!argv.includes('--pdeathsig'), argv.join(' '));
      assert.ok(argv.includes('-daemonize'));
    });
  });

  describe('buildImage refusals', () => {
    const ctx = { signal: new AbortController().signal, progress: () => undefined };
    it('refuses an image without a recipe, a bad mirror, and an output outside the cache', async () => {
      const output = path.join(scope.cacheDir, 'images', 'x.ext4');
      fs.mkdirSync(path.dirname(output), { recursive: true });
      await assert.rejects(helper.buildImage({ name: 'arch', mirror: 'http://deb.debian.org/debian', output }, ctx), refused(/no built-in recipe/));
      await assert.rejects(helper.buildImage({ name: 'debian-bookworm', mirror: 'http://x/ $(id)', output }, ctx), refused(/mirror/));
      await assert.rejects(helper.buildImage({ name: 'debian-bookworm', mirror: 'http://deb.debian.org/debian', output: path.join(scope.stateDir, 'x.ext4') }, ctx), refused(/outside/));
      assert.equal(runner.calls.length, 0);
    });
  });
});
