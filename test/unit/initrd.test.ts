import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { BangerError } from '../../src/protocol/errors.ts';
import { readCpio } from '../../src/kernel/cpio.ts';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AGENT_UNIT, buildBaseInitrd, buildVmConfigArchive, INIT_SCRIPT, moduleName, resolveModules, type VmBootConfig } from '../../src/kernel/initrd.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

// Shaped like a real modules.dep: every module has a line, dependencies listed after the colon.
const MODULES_DEP = [
  'kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz kernel/fs/mbcache.ko.xz kernel/lib/crc16.ko.xz',
  'kernel/fs/jbd2/jbd2.ko.xz:',
  'kernel/fs/mbcache.ko.xz:',
  'kernel/lib/crc16.ko.xz:',
  'kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio_ring.ko.xz',
  'kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko.xz kernel/drivers/net/net_failover.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz',
  'kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz',
  'kernel/net/core/failover.ko.xz:',
  'kernel/drivers/virtio/virtio_ring.ko.xz:',
  'kernel/crypto/crc32c-generic.ko.zst:',
  '',
].join('\n');

function depsOf(file: string): string[] {
  const line = MODULES_DEP.split('\n').find((l) => l.startsWith(`${file}:`))!;
  return line.split(':')[1]!.trim().split(/\s+/).filter(Boolean);
}

describe('resolveModules', () => {
  it('puts every dependency before the module that needs it, and each module once', () => {
    const order = resolveModules(MODULES_DEP, new Set(), ['ext4', 'virtio_net', 'virtio_blk']);
    assert.equal(new Set(order).size, order.length, `no duplicates in ${order.join(', ')}`);
    for (const [i, file] of order.entries()) {
      for (const dep of depsOf(file)) {
        const j = order.indexOf(dep);
        assert.ok(j >= 0 && j < i, `${dep} is loaded before ${file}`);
      }
    }
    assert.deepEqual(new Set(order), new Set([
      'kernel/fs/ext4/ext4.ko.xz', 'kernel/fs/jbd2/jbd2.ko.xz', 'kernel/fs/mbcache.ko.xz', 'kernel/lib/crc16.ko.xz',
      'kernel/drivers/net/virtio_net.ko.xz', 'kernel/net/core/failover.ko.xz', 'kernel/drivers/net/net_failover.ko.xz',
      'kernel/drivers/virtio/virtio_ring.ko.xz', 'kernel/drivers/block/virtio_blk.ko.xz',
    ]));
  });

  it('loads only what was asked for and its dependencies', () => {
    assert.deepEqual(resolveModules(MODULES_DEP, new Set(), ['virtio_blk']), [
      'kernel/drivers/virtio/virtio_ring.ko.xz',
      'kernel/drivers/block/virtio_blk.ko.xz',
    ]);
  });

  it('skips a wanted module that is built into the kernel', () => {
    const order = resolveModules(MODULES_DEP, new Set(['virtio_mmio', 'virtio_console']), ['virtio_mmio', 'virtio_blk', 'virtio_console']);
    assert.deepEqual(order, ['kernel/drivers/virtio/virtio_ring.ko.xz', 'kernel/drivers/block/virtio_blk.ko.xz']);
  });

  it('finds a module whose file name has dashes by its underscore name', () => {
    assert.deepEqual(resolveModules(MODULES_DEP, new Set(), ['crc32c_generic']), ['kernel/crypto/crc32c-generic.ko.zst']);
  });

  it('refuses a module that is neither built in nor in modules.dep, with KERNEL_NOT_FOUND', () => {
    assert.throws(
      () => resolveModules(MODULES_DEP, new Set(['ext4']), ['ext4', 'vmw_vsock_virtio_transport']),
      (err: unknown) => err instanceof BangerError && err.code === 'KERNEL_NOT_FOUND' && /vmw_vsock_virtio_transport/.test(err.message) && err.hint !== undefined,
    );
  });
});

describe('moduleName', () => {
  it('drops the directory and every .ko suffix, and turns dashes into underscores', () => {
    assert.equal(moduleName('kernel/fs/ext4/ext4.ko'), 'ext4');
    assert.equal(moduleName('kernel/fs/ext4/ext4.ko.xz'), 'ext4');
    assert.equal(moduleName('kernel/fs/ext4/ext4.ko.zst'), 'ext4');
    assert.equal(moduleName('kernel/fs/ext4/ext4.ko.gz'), 'ext4');
    assert.equal(moduleName('kernel/crypto/crc32c-generic.ko.xz'), 'crc32c_generic');
    assert.equal(moduleName('virtio_net'), 'virtio_net');
  });
});

describe('buildVmConfigArchive', () => {
  const config: VmBootConfig = {
    hostname: 'brisk-otter',
    ip: '172.30.0.7',
    prefix: 24,
    gateway: '172.30.0.1',
    machineId: '0123456789abcdef0123456789abcdef',
    authorizedKeys: 'ssh-ed25519 AAAAuser banger\n',
    hostKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nxyz\n-----END OPENSSH PRIVATE KEY-----\n',
    hostKeyPub: 'ssh-ed25519 AAAAhost banger-x\n',
  };

  it('holds vm.env with the VM values, the keys, and private files readable only by root', () => {
    const entries = readCpio(buildVmConfigArchive(config));
    const byPath = new Map(entries.map((e) => [e.path, e]));
    assert.deepEqual([...byPath.keys()].sort(), [
      'banger', 'banger/authorized_keys', 'banger/ssh_host_ed25519_key', 'banger/ssh_host_ed25519_key.pub', 'banger/vm.env',
    ]);
    const env = byPath.get('banger/vm.env')!.data!.toString();
    assert.deepEqual(env.trimEnd().split('\n'), [
      "BANGER_HOSTNAME='brisk-otter'",
      "BANGER_IP='172.30.0.7'",
      "BANGER_PREFIX='24'",
      "BANGER_GATEWAY='172.30.0.1'",
      "BANGER_MACHINE_ID='0123456789abcdef0123456789abcdef'",
      "BANGER_BOOT='systemd'",
      "BANGER_DNS=''",
    ]);
    assert.equal(byPath.get('banger/authorized_keys')!.data!.toString(), config.authorizedKeys);
    assert.equal(byPath.get('banger/ssh_host_ed25519_key')!.data!.toString(), config.hostKey);
    assert.equal(byPath.get('banger/ssh_host_ed25519_key.pub')!.data!.toString(), config.hostKeyPub);
    assert.equal(byPath.get('banger/ssh_host_ed25519_key')!.mode & 0o777, 0o600);
    assert.equal(byPath.get('banger/vm.env')!.mode & 0o777, 0o600);
    // It is appended to the base initrd, so it must keep the 512-byte framing.
    assert.equal(buildVmConfigArchive(config).length % 512, 0);
  });

  for (const [field, value] of [
    ['hostname', "it's"],
    ['hostname', 'a;reboot'],
    ['hostname', '$(reboot)'],
    ['hostname', 'two words'],
    ['hostname', ''],
    ['ip', "1.2.3.4'"],
    ['gateway', '1.2.3.1\nBANGER_IP=9.9.9.9'],
    ['machineId', 'abc`id`'],
  ] as const) {
    it(`refuses an unsafe ${field} ${JSON.stringify(value)}`, () => {
      assert.throws(() => buildVmConfigArchive({ ...config, [field]: value }), /unsafe value/);
    });
  }

  it("says when banger's agent is init, with the host's nameservers, and refuses an unsafe nameserver", () => {
    const env = readCpio(buildVmConfigArchive({ ...config, boot: 'agent', dns: ['192.0.2.53', '198.51.100.1'] })).find((e) => e.path === 'banger/vm.env')!.data!.toString();
    assert.match(env, /^BANGER_BOOT='agent'$/m);
    assert.match(env, /^BANGER_DNS='192\.0\.2\.53 198\.51\.100\.1'$/m);
    assert.throws(() => buildVmConfigArchive({ ...config, boot: 'agent', dns: ["1.1.1.1'; reboot; '"] }), /unsafe value/);
  });
});

describe('INIT_SCRIPT', () => {
  it('is valid shell, and hands PID 1 to the agent only for agent boots', () => {
    execFileSync('sh', ['-n'], { input: INIT_SCRIPT });
    const agentBranch = INIT_SCRIPT.slice(INIT_SCRIPT.indexOf('if [ "$BANGER_BOOT" = agent ]; then\n  [ -x'));
    assert.match(agentBranch, /exec switch_root \/newroot \/usr\/local\/libexec\/banger-agent --init\nfi\n/);
    assert.match(INIT_SCRIPT, /exec switch_root \/newroot \/sbin\/init\n$/);
  });
});

describe('buildBaseInitrd', () => {
  const names = ['crc32c_generic', 'ext4', 'virtio_mmio', 'virtio_blk', 'virtio_net', 'virtio_console', 'vmw_vsock_virtio_transport'];

  /** A base initrd for a fake kernel whose modules.dep lists `modules`, each a minimal ELF object. */
  async function build(modules: string[], listedOnly: string[] = []): Promise<Buffer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-initrd-'));
    try {
      const modulesDir = path.join(dir, 'modules');
      fs.mkdirSync(path.join(modulesDir, 'kernel'), { recursive: true });
      for (const n of modules) fs.writeFileSync(path.join(modulesDir, 'kernel', `${n}.ko`), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]));
      fs.writeFileSync(path.join(modulesDir, 'modules.dep'), [...modules, ...listedOnly].map((n) => `kernel/${n}.ko:`).join('\n'));
      const busybox = path.join(dir, 'busybox');
      fs.writeFileSync(busybox, 'bb');
      return await buildBaseInitrd({ runner: new FakeProcessRunner(), modulesDir, busybox });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  const loaded = (initrd: Buffer): string[] => readCpio(initrd).find((e) => e.path === 'etc/banger-modules')!.data!.toString().trim().split('\n');

  it('is an uncompressed archive (no gunzip under emulation) that ends 512-byte aligned for the per-VM archive', async () => {
    const initrd = await build(names);
    assert.equal(initrd.subarray(0, 6).toString(), '070701', 'starts with a newc header, not a gzip member');
    assert.equal(initrd.length % 512, 0);
    assert.equal(readCpio(initrd).find((e) => e.path === 'init')!.data!.toString(), INIT_SCRIPT);
    assert.deepEqual(loaded(initrd), names.map((n) => `${n}.ko`));
  });

  it('loads virtio_rng and virtio_balloon when the kernel has them, and boots without them when it does not', async () => {
    assert.deepEqual(loaded(await build([...names, 'virtio_balloon', 'virtio_rng'])), [...names, 'virtio_rng', 'virtio_balloon'].map((n) => `${n}.ko`));
    assert.deepEqual(loaded(await build([...names, 'virtio_balloon'])), [...names, 'virtio_balloon'].map((n) => `${n}.ko`));
    assert.ok(!loaded(await build(names)).some((m) => m === 'virtio_balloon.ko' || m === 'virtio_rng.ko'));
  });

  it('skips an optional module that modules.dep lists but whose file is missing (a bundle with only what guests need)', async () => {
    const initrd = await build(names, ['virtio_rng']);
    assert.deepEqual(loaded(initrd), names.map((n) => `${n}.ko`));
  });
});

describe('AGENT_UNIT', () => {
  it('starts at sysinit without default dependencies and outweighs background services for CPU', () => {
    assert.match(AGENT_UNIT, /^DefaultDependencies=no$/m);
    assert.match(AGENT_UNIT, /^WantedBy=sysinit\.target$/m);
    assert.match(AGENT_UNIT, /^CPUWeight=1000$/m);
  });
});
