import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildQemuArgv, guestCmdline, qemuProcessName, TCG_TB_MIB } from '../../src/system/qemu-argv.ts';
import { AGENT_PORT_NAME } from '../../src/system/guest-contract.ts';
import type { QemuLaunchSpec } from '../../src/protocol/privileged-ops.ts';

const spec: QemuLaunchSpec = {
  vmId: '0123456789ab',
  accel: 'tcg',
  vcpus: 2,
  memoryMib: 1536,
  kernelPath: '/c/kernels/vmlinuz',
  initrdPath: '/s/vms/0123456789ab/initrd.img',
  cmdline: 'console=ttyS0 panic=-1',
  disks: [
    { id: 'root', path: '/s/vms/0123456789ab/root.qcow2', format: 'qcow2' },
    { id: 'work', path: '/s/vms/0123456789ab/work.ext4', format: 'raw' },
  ],
  net: { tap: 'bgt0123456789ab', mac: '52:54:00:89:ab:cd' },
  qmpSocket: '/s/vms/0123456789ab/qmp.sock',
  agentSocket: '/s/vms/0123456789ab/agent.sock',
  serialLog: '/s/vms/0123456789ab/serial.log',
  pidFile: '/s/vms/0123456789ab/qemu.pid',
};

/** The value after `flag`, failing if the flag is absent. */
function valueOf(argv: string[], flag: string): string {
  const i = argv.indexOf(flag);
  assert.ok(i >= 0 && i + 1 < argv.length, `${flag} present with a value`);
  return argv[i + 1]!;
}

/** Every value given to a repeated flag, in order. */
function valuesOf(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
}

describe('buildQemuArgv', () => {
  const argv = buildQemuArgv(spec);

  it('builds a microvm with the given accelerator, CPUs and memory', () => {
    assert.match(valueOf(argv, '-M'), /^microvm(,|$)/);
    assert.equal(valueOf(argv, '-accel'), `tcg,tb-size=${TCG_TB_MIB}`);
    assert.equal(valueOf(argv, '-smp'), '2');
    assert.equal(valueOf(argv, '-m'), '1536M');
    assert.ok(!argv.includes('-cpu'), 'no -cpu host under TCG');
  });

  it('passes the host CPU through under KVM', () => {
    const kvm = buildQemuArgv({ ...spec, accel: 'kvm' });
    assert.equal(valueOf(kvm, '-accel'), 'kvm', 'the translation cache size is a TCG option only');
    assert.equal(valueOf(kvm, '-cpu'), 'host');
  });

  it('boots the kernel and initrd with the command line as one argument', () => {
    assert.equal(valueOf(argv, '-kernel'), spec.kernelPath);
    assert.equal(valueOf(argv, '-initrd'), spec.initrdPath);
    assert.equal(valueOf(argv, '-append'), 'console=ttyS0 panic=-1');
  });

  it('daemonizes with a pid file, a QMP socket and the serial console in a file', () => {
    assert.ok(argv.includes('-daemonize'));
    assert.equal(valueOf(argv, '-pidfile'), spec.pidFile);
    assert.equal(valueOf(argv, '-serial'), `file:${spec.serialLog}`);
    assert.equal(valueOf(argv, '-qmp'), `unix:${spec.qmpSocket},server=on,wait=off`);
    assert.ok(argv.includes('-nodefaults') && argv.includes('-no-user-config') && argv.includes('-no-reboot'));
    assert.equal(valueOf(argv, '-display'), 'none');
  });

  it('gives the guest agent a virtio-serial port named for the agent, on a Unix socket QEMU serves', () => {
    const argv = buildQemuArgv(spec);
    assert.equal(valueOf(argv, '-chardev'), `socket,id=agent0,path=${spec.agentSocket},server=on,wait=off`);
    const devices = argv.filter((_, i) => argv[i - 1] === '-device');
    assert.ok(devices.includes('virtio-serial-device,max_ports=2'));
    assert.ok(devices.includes(`virtserialport,id=agentport,chardev=agent0,name=${AGENT_PORT_NAME},nr=1`));
  });

  it('names the process after the VM, within the 15-character limit', () => {
    const name = valueOf(argv, '-name');
    assert.ok(name.startsWith(`${qemuProcessName(spec.vmId)},process=`));
    assert.ok(name.split('process=')[1]!.length <= 15);
  });

  it('attaches each disk as a virtio-blk device with its format, in order', () => {
    assert.deepEqual(valuesOf(argv, '-drive'), [
      'id=root,file=/s/vms/0123456789ab/root.qcow2,format=qcow2,if=none,discard=unmap',
      'id=work,file=/s/vms/0123456789ab/work.ext4,format=raw,if=none,discard=unmap',
    ]);
    const devices = valuesOf(argv, '-device');
    assert.ok(devices.includes('virtio-blk-device,drive=root'));
    assert.ok(devices.includes('virtio-blk-device,drive=work'));
  });

  it('connects the tap as a virtio-net device with the VM MAC, without scripts', () => {
    assert.deepEqual(valuesOf(argv, '-netdev'), ['tap,id=net0,ifname=bgt0123456789ab,script=no,downscript=no']);
    assert.ok(valuesOf(argv, '-device').includes('virtio-net-device,netdev=net0,mac=52:54:00:89:ab:cd'));
  });

  it('gives back memory the guest frees: a balloon with free page reporting, on every VM', () => {
    assert.ok(valuesOf(argv, '-device').includes('virtio-balloon-device,free-page-reporting=on'));
    assert.ok(valuesOf(buildQemuArgv({ ...spec, accel: 'kvm' }), '-device').includes('virtio-balloon-device,free-page-reporting=on'));
  });

  it('gives the guest entropy from the host (virtio-rng), on every VM', () => {
    assert.ok(valuesOf(argv, '-device').includes('virtio-rng-device'));
  });

  it('has no network device without a net', () => {
    const bare = buildQemuArgv({ ...spec, net: null, disks: [] });
    assert.deepEqual(valuesOf(bare, '-netdev'), []);
    assert.deepEqual(valuesOf(bare, '-device').filter((d) => !d.startsWith('virtserial') && !d.startsWith('virtio-serial') && !d.startsWith('virtio-balloon') && d !== 'virtio-rng-device'), []);
    assert.deepEqual(valuesOf(bare, '-drive'), []);
  });
});

describe('guestCmdline', () => {
  it('adds tsc_early_khz only under TCG and only when the frequency is known', () => {
    assert.match(guestCmdline({ accel: 'tcg', tscKhz: 2500000 }), /(^| )tsc_early_khz=2500000( |$)/);
    assert.doesNotMatch(guestCmdline({ accel: 'kvm', tscKhz: 2500000 }), /tsc_early_khz/);
    assert.doesNotMatch(guestCmdline({ accel: 'tcg', tscKhz: null }), /tsc_early_khz/);
    // The TSC is trusted only where banger told the guest its frequency: under TCG, where it is the host's.
    assert.match(guestCmdline({ accel: 'tcg', tscKhz: 2500000 }), /(^| )tsc=reliable( |$)/);
    assert.doesNotMatch(guestCmdline({ accel: 'kvm', tscKhz: 2500000 }), /tsc=reliable/);
    assert.doesNotMatch(guestCmdline({ accel: 'tcg', tscKhz: null }), /tsc=reliable/);
    // Small processes (the guest agent) are not given 2 MiB pages they did not ask for.
    assert.match(guestCmdline({ accel: 'tcg', tscKhz: null }), /(^| )transparent_hugepage=madvise( |$)/);
  });

  it('adds the probe flag only when probing', () => {
    assert.match(guestCmdline({ accel: 'kvm', tscKhz: null, probe: true }), /(^| )banger\.probe=1( |$)/);
    assert.doesNotMatch(guestCmdline({ accel: 'kvm', tscKhz: null }), /banger\.probe/);
  });

  it('sends the console to ttyS0, never reboots, and keeps names like eth0', () => {
    const words = guestCmdline({ accel: 'kvm', tscKhz: null }).split(' ');
    for (const w of ['console=ttyS0', 'panic=-1', 'net.ifnames=0']) assert.ok(words.includes(w), w);
  });

  it('uses only characters bangerd-root accepts', () => {
    assert.match(guestCmdline({ accel: 'tcg', tscKhz: 3000000, probe: true }), /^[a-zA-Z0-9_.=,: /-]{0,1024}$/);
  });
});
