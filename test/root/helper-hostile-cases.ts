// The hostile requests helper-hostile.test.ts sends to a real bangerd-root: for every op in its allow-list a
// valid request (never sent when it would do work) and requests that differ from it in one hostile value.
// Adding an op to HELPER_METHODS without an entry here fails the test.
import type { HELPER_METHODS } from '../../src/protocol/privileged-ops.ts';

export type HelperMethod = (typeof HELPER_METHODS)[number];

/** What the test set up for the helper and around it (see helper-hostile.test.ts). */
export interface HostileWorld {
  ns: string;
  /** Another namespace the test made, with a bridge of the same name and a tap of the owner's in it. */
  otherNs: string;
  bridge: string;
  gatewayCidr: string;
  /** The owner's tap, made through the helper, on its bridge. */
  ownTap: string;
  /** A veth named like a tap, a plain veth pair, and a tap of another uid: none is banger's. */
  taplikeVeth: string;
  plainVeth: string;
  plainPeer: string;
  strangersTap: string;
  /** A guest address with NAT, enabled through the helper. */
  natIp: string;
  vmId: string;
  vmDir: string;
  stateDir: string;
  cacheDir: string;
  /** A stand-in QEMU only root can change (writes the pid in its target file), and one of the owner's. */
  rootQemu: string;
  ownersQemu: string;
  /** A stand-in Firecracker and jailer only root can change (the jailer writes a pid file), the owner's own, and a link of the owner's to /bin/sh named like Firecracker. */
  rootFirecracker: string;
  rootJailer: string;
  ownersFirecracker: string;
  ownersJailer: string;
  ownersShellLink: string;
  /** In the vm directory: a symlink to /etc/passwd. In state and cache: a symlink to /etc. In cache: to /etc/shadow. */
  passwdLink: string;
  stateEtcDir: string;
  cacheEtcDir: string;
  shadowLink: string;
  fifo: string;
  /** A FIFO in the VM's directory. */
  vmFifo: string;
  device: string;
  rootsFile: string;
  layer: { path: string; digest: string; diffId: string; mediaType: string };
  /** Paths that must never come to exist. */
  mustNotExist: string[];
  /** Makes the stand-in QEMU write `pid` as its pid. */
  qemuWritesPid(pid: number): void;
  /** Makes the stand-in jailer write `pid` as its child's. */
  jailerWritesPid(pid: number): void;
  sleeperPid: number;
}

export interface HostileCase {
  what: string;
  params: unknown;
  /** What the refusal must say, when it is about one value. */
  match?: RegExp;
  before?: () => void;
}

export interface MethodCases {
  /** A request the helper would accept (the generic cases are made from it); null for ops without params. */
  valid: Record<string, unknown> | null;
  hostile: HostileCase[];
}

const OUTSIDE = /outside banger's directories/;

/** `base` with `key` set to each value: one case per value. */
function each(base: Record<string, unknown>, key: string, values: Array<[unknown, RegExp?]>, note = ''): HostileCase[] {
  return values.map(([value, match]) => ({ what: `${key} ${JSON.stringify(value)?.slice(0, 60)}${note}`, params: { ...base, [key]: value }, ...(match ? { match } : {}) }));
}

export function hostileCases(w: HostileWorld): Record<HelperMethod, MethodCases> {
  const ifaces = (pattern?: RegExp): Array<[unknown, RegExp?]> => ['eth0', 'lo', w.plainVeth, w.plainPeer, `${w.bridge};reboot`, `${w.bridge}\n`, 'x'.repeat(100)].map((v) => [v, pattern]);
  const otherNamespaces: Array<[unknown, RegExp?]> = [[null, /network namespace/], [w.otherNs, /network namespace/], ['/proc/1/ns/net'], ['../../proc/1/ns/net'], [`${w.ns}\u0000`]];
  const bridge = { bridge: w.bridge, gatewayCidr: w.gatewayCidr, netns: w.ns };
  const tap = { tap: 'bgt00000000c1', bridge: w.bridge, netns: w.ns };
  const del = { tap: w.ownTap, netns: w.ns };
  const nat = { ip: w.natIp, bridge: w.bridge, netns: w.ns };
  const spec = {
    vmId: w.vmId, accel: 'tcg', vcpus: 1, memoryMib: 256,
    kernelPath: `${w.cacheDir}/kernels/vmlinuz`, initrdPath: `${w.vmDir}/initrd.img`, cmdline: 'console=ttyS0',
    disks: [{ id: 'root', path: `${w.vmDir}/root.qcow2`, format: 'qcow2' }],
    net: { tap: w.ownTap, mac: '52:54:00:00:00:05' },
    qmpSocket: `${w.vmDir}/qmp.sock`, agentSocket: `${w.vmDir}/agent.sock`, serialLog: `${w.vmDir}/serial.log`, pidFile: `${w.vmDir}/qemu.pid`,
  };
  const launch = { qemu: w.rootQemu, spec, netns: w.ns };
  const withSpec = (what: string, change: Record<string, unknown>, match?: RegExp): HostileCase => ({ what, params: { ...launch, spec: { ...spec, ...change } }, ...(match ? { match } : {}) });
  const fcSpec = {
    vmId: w.vmId, vcpus: 1, memoryMib: 256, kernelPath: `${w.cacheDir}/kernels/vmlinuz`, initrdPath: `${w.vmDir}/initrd.img`,
    drives: [{ id: 'rootfs', path: `${w.vmDir}/root.qcow2`, readOnly: true }], serialLog: `${w.vmDir}/serial.log`, tap: w.ownTap, snapshot: null,
  };
  const fc = { firecracker: w.rootFirecracker, jailer: w.rootJailer, spec: fcSpec, netns: w.ns };
  const withFc = (what: string, change: Record<string, unknown>, match?: RegExp): HostileCase => ({ what, params: { ...fc, spec: { ...fcSpec, ...change } }, ...(match ? { match } : {}) });
  const drive = (p: string): Record<string, unknown> => ({ drives: [{ id: 'rootfs', path: p, readOnly: true }] });
  const snapshot = (statePath: string, memPath = `${w.vmDir}/initrd.img`): Record<string, unknown> => ({ snapshot: { statePath, memPath } });
  const build = { name: 'debian-bookworm', mirror: 'http://deb.debian.org/debian', output: `${w.cacheDir}/images/built.ext4` };
  const layers = { layers: [w.layer], output: `${w.cacheDir}/images/imported.ext4`, minSizeBytes: 0, user: null, devices: 'refuse' };
  const withLayer = (what: string, change: Record<string, unknown>, match?: RegExp): HostileCase => ({ what, params: { ...layers, layers: [{ ...w.layer, ...change }] }, ...(match ? { match } : {}) });
  const noParams = (): HostileCase[] => [
    { what: 'a pid to act on', params: { pid: 1 }, match: /unknown field "pid"/ },
    { what: 'a command', params: { argv: ['/bin/sh', '-c', 'id'] }, match: /unknown field "argv"/ },
  ];

  return {
    'helper.ping': { valid: null, hostile: noParams() },
    'helper.shutdown': { valid: null, hostile: noParams() },
    'net.ensureBridge': {
      valid: bridge,
      hostile: [
        ...each(bridge, 'bridge', [...ifaces(), [w.taplikeVeth]]),
        ...each(bridge, 'gatewayCidr', [['10.0.0.1/24', /manages gateway/], ['172.31.77.1/16'], ['172.31.77.1/24 dev eth0'], ['']]),
        ...each(bridge, 'netns', otherNamespaces),
      ],
    },
    'net.createTap': {
      valid: tap,
      hostile: [
        ...each(tap, 'tap', [...ifaces(/tap name/), [w.taplikeVeth, /is a veth device, not a tap/], [w.strangersTap, /belongs to uid 65533/], ['bgt00000000c1 '], [w.bridge]]),
        ...each(tap, 'bridge', [['eth0'], [w.plainVeth], ['docker0']]),
        ...each(tap, 'netns', otherNamespaces),
        ...each({ ...tap, tap: w.ownTap }, 'netns', [[w.otherNs, /network namespace/]], " (the owner's tap there)"),
      ],
    },
    'net.deleteTap': {
      valid: del,
      hostile: [
        ...each(del, 'tap', [...ifaces(/tap name/), [w.taplikeVeth, /is a veth device, not a tap/], [w.strangersTap, /belongs to uid 65533/], [w.bridge]]),
        ...each(del, 'netns', otherNamespaces, " (the owner's tap there)"),
      ],
    },
    'net.natEnable': {
      valid: { ...nat, ip: '172.31.77.6' },
      hostile: [
        ...each(nat, 'ip', ['10.0.0.5', '0.0.0.0', '8.8.8.8', '172.31.77.1', '172.31.77.255', '172.31.77.0/24', '172.31.77.6; flush ruleset', '172.31.77.6 '].map((ip) => [ip, /guest address/])),
        ...each(nat, 'bridge', [['eth0'], [w.plainVeth]]),
        ...each(nat, 'netns', otherNamespaces),
      ],
    },
    'net.natDisable': {
      valid: nat,
      hostile: [
        ...each(nat, 'ip', [['*'], [`${w.natIp} `], ['172.31.77.0/24']]),
        ...each(nat, 'bridge', [['eth0', /manages bridge/], [w.plainVeth]], ` (NAT of ${w.natIp} must stay)`),
        ...each(nat, 'netns', otherNamespaces, ` (NAT of ${w.natIp} must stay)`),
      ],
    },
    'net.natList': {
      valid: { bridge: w.bridge, netns: w.ns },
      hostile: [...each({ bridge: w.bridge, netns: w.ns }, 'bridge', [['eth0'], ['lo']]), ...each({ bridge: w.bridge, netns: w.ns }, 'netns', otherNamespaces)],
    },
    'vmm.launchQemu': {
      valid: launch,
      hostile: [
        ...each(launch, 'qemu', [['/bin/sh'], ['/usr/bin/env'], [w.ownersQemu, /not a program of the host's/], ['qemu-system-x86_64;sh'], ['../../../bin/sh']]),
        ...each(launch, 'netns', otherNamespaces),
        withSpec('kernel /etc/passwd', { kernelPath: '/etc/passwd' }, OUTSIDE),
        withSpec('kernel /etc/shadow', { kernelPath: '/etc/shadow' }, OUTSIDE),
        withSpec('kernel: a symlink to /etc/passwd', { kernelPath: w.passwdLink }, /is a symlink/),
        withSpec('kernel through a symlink to /etc', { kernelPath: `${w.stateEtcDir}/passwd` }, /which is a symlink, not a directory/),
        withSpec('kernel with ..', { kernelPath: `${w.vmDir}/../../../../../../../../etc/passwd` }, /\.\. component/),
        withSpec('kernel /proc/self/environ', { kernelPath: '/proc/self/environ' }, OUTSIDE),
        withSpec('initrd: a FIFO', { initrdPath: w.fifo }, /is a FIFO/),
        withSpec('disk: a device node', { disks: [{ id: 'root', path: w.device, format: 'raw' }] }, /is a device node/),
        withSpec('disk /dev/sda', { disks: [{ id: 'root', path: '/dev/sda', format: 'raw' }] }, OUTSIDE),
        withSpec("disk: root's file", { disks: [{ id: 'root', path: w.rootsFile, format: 'raw' }] }, /belongs to uid 0/),
        withSpec('nine disks', { disks: Array.from({ length: 9 }, () => spec.disks[0]) }, /at most 8/),
        withSpec('serial log: a symlink to /etc/passwd (truncated at launch)', { serialLog: w.passwdLink }, /is a symlink/),
        withSpec('serial log /etc/passwd', { serialLog: '/etc/passwd' }, OUTSIDE),
        withSpec('pid file in /etc', { pidFile: '/etc/banger-hostile.pid' }, OUTSIDE),
        withSpec('qmp socket in /etc', { qmpSocket: '/etc/banger-hostile.sock' }, OUTSIDE),
        withSpec('agent socket through a symlink to /etc', { agentSocket: `${w.stateEtcDir}/banger-hostile.sock` }, /which is a symlink/),
        withSpec('vm id ../../etc', { vmId: '../../etc' }, /vm id/),
        withSpec('an unknown vm id', { vmId: 'ffffffffffff' }, /not a VM of this owner's/),
        withSpec('100000 vcpus', { vcpus: 100_000 }, /vcpus/),
        withSpec('negative memory', { memoryMib: -1 }, /memory/),
        withSpec('a kernel command line with a shell', { cmdline: 'init=/bin/sh; reboot' }, /kernel command line/),
        withSpec('tap eth0', { net: { tap: 'eth0', mac: '52:54:00:00:00:05' } }, /tap name/),
        withSpec('a veth with a tap name', { net: { tap: w.taplikeVeth, mac: '52:54:00:00:00:05' } }, /is a veth device/),
        withSpec("another uid's tap", { net: { tap: w.strangersTap, mac: '52:54:00:00:00:05' } }, /belongs to uid 65533/),
        { what: 'a pid file naming pid 1', params: launch, before: () => w.qemuWritesPid(1), match: /names process 1, which is not banger's/ },
        { what: "a pid file naming the test's sleep", params: launch, before: () => w.qemuWritesPid(w.sleeperPid), match: /which is not banger's: it does not run as uid/ },
        { what: 'a pid file naming the test itself', params: launch, before: () => w.qemuWritesPid(process.pid), match: /which is not banger's/ },
      ],
    },
    'vmm.launchFirecracker': {
      valid: fc,
      hostile: [
        ...each(fc, 'firecracker', [['/bin/sh', /contains "firecracker"/], ['/usr/bin/env'], [w.ownersFirecracker, /not a program of the host's: .*belongs to uid 65534/],
          [w.ownersShellLink, /does not contain "firecracker"/], ['firecracker;sh', /firecracker binary/], ['../../../bin/firecracker', /absolute path without/],
          [`${w.rootFirecracker}/../../../../bin/sh`, /\.\. components/]]),
        ...each(fc, 'jailer', [['/bin/sh', /contains "jailer"/], [w.ownersJailer, /not a program of the host's/], ['jailer $(reboot)', /jailer binary/], ['../../../bin/jailer', /absolute path without/]]),
        { what: "no jailer, and the owner's own firecracker", params: { ...fc, jailer: null, firecracker: w.ownersFirecracker }, match: /not a program of the host's/ },
        ...each(fc, 'netns', otherNamespaces),
        withFc('kernel /etc/passwd', { kernelPath: '/etc/passwd' }, OUTSIDE),
        withFc('kernel /etc/shadow', { kernelPath: '/etc/shadow' }, OUTSIDE),
        withFc('kernel: a symlink to /etc/passwd', { kernelPath: w.passwdLink }, /is a symlink/),
        withFc('kernel through a symlink to /etc', { kernelPath: `${w.stateEtcDir}/passwd` }, /which is a symlink, not a directory/),
        withFc('kernel with ..', { kernelPath: `${w.vmDir}/../../../../../../../../etc/passwd` }, /\.\. component/),
        withFc('initrd: a FIFO', { initrdPath: w.fifo }, /is a FIFO/),
        withFc('initrd /proc/self/environ', { initrdPath: '/proc/self/environ' }, OUTSIDE),
        withFc('drive: a device node', drive(w.device), /is a device node/),
        withFc('drive /dev/sda', drive('/dev/sda'), OUTSIDE),
        withFc("drive: root's file", drive(w.rootsFile), /belongs to uid 0/),
        withFc('drive: a symlink to /etc/shadow', drive(w.shadowLink), /is a symlink/),
        withFc('drive id with a shell', { drives: [{ id: 'root;reboot', path: `${w.vmDir}/root.qcow2`, readOnly: true }] }, /drive 0 id/),
        withFc('no drives', { drives: [] }, /1 to 8/),
        withFc('nine drives', { drives: Array.from({ length: 9 }, (_, i) => ({ id: `d${i}`, path: `${w.vmDir}/root.qcow2`, readOnly: true })) }, /1 to 8/),
        withFc('serial log: a symlink to /etc/passwd (truncated at launch)', { serialLog: w.passwdLink }, /is a symlink/),
        withFc('serial log /etc/passwd', { serialLog: '/etc/passwd' }, OUTSIDE),
        withFc('serial log: a FIFO in the VM\'s directory', { serialLog: w.vmFifo }, /is a FIFO/),
        withFc("serial log outside the VM's directory", { serialLog: `${w.stateDir}/serial.log` }, /not in the directory of VM/),
        withFc('snapshot state /etc/shadow', snapshot('/etc/shadow'), OUTSIDE),
        withFc('snapshot state: a symlink to /etc/passwd', snapshot(w.passwdLink), /is a symlink/),
        withFc('snapshot memory through a symlink to /etc', snapshot(`${w.vmDir}/root.qcow2`, `${w.stateEtcDir}/shadow`), /which is a symlink/),
        withFc('snapshot memory: a FIFO', snapshot(`${w.vmDir}/root.qcow2`, w.vmFifo), /is a FIFO/),
        withFc("snapshot: the VM's own files, but not its snapshot", snapshot(`${w.vmDir}/root.qcow2`), /not where VM .* snapshot is kept/),
        withFc('vm id ../../etc', { vmId: '../../etc' }, /vm id/),
        withFc('an unknown vm id', { vmId: 'ffffffffffff' }, /not a VM of this owner's/),
        withFc('100000 vcpus', { vcpus: 100_000 }, /vcpus/),
        withFc('no vcpus', { vcpus: 0 }, /vcpus/),
        withFc('negative memory', { memoryMib: -1 }, /memory/),
        withFc('a petabyte of memory', { memoryMib: 1e9 }, /memory/),
        withFc('tap eth0', { tap: 'eth0' }, /tap name/),
        withFc('a plain veth as the tap', { tap: w.plainVeth }, /tap name/),
        withFc('a veth with a tap name', { tap: w.taplikeVeth }, /is a veth device/),
        withFc("another uid's tap", { tap: w.strangersTap }, /belongs to uid 65533/),
        withFc('a tap that does not exist', { tap: 'bgt00000000c9' }, /does not exist/),
        { what: 'a jailer pid file naming pid 1', params: fc, before: () => w.jailerWritesPid(1), match: /names process 1, which is not banger's/ },
        { what: "a jailer pid file naming the test's sleep", params: fc, before: () => w.jailerWritesPid(w.sleeperPid), match: /which is not banger's: it does not run as uid/ },
        { what: 'a jailer pid file naming the test itself', params: fc, before: () => w.jailerWritesPid(process.pid), match: /which is not banger's/ },
      ],
    },
    'image.build': {
      valid: build,
      hostile: [
        ...each(build, 'name', [['../../etc/passwd', /no built-in recipe/], ['arch']]),
        ...each(build, 'mirror', [['file:///etc/shadow', /mirror/], ['http://x/ $(reboot)', /mirror/], ["http://x/';id;'"]]),
        ...each(build, 'output', [['/etc/passwd', OUTSIDE], [w.shadowLink, /is a symlink/], [`${w.cacheEtcDir}/x.ext4`, /which is a symlink/], [`${w.cacheDir}/../../../etc/x.ext4`, /\.\. component/], ['/proc/sys/kernel/x'], [w.device, /is a device node/], [`${w.stateDir}/x.ext4`, OUTSIDE]]),
      ],
    },
    'image.importLayers': {
      valid: layers,
      hostile: [
        withLayer('layer /etc/shadow', { path: '/etc/shadow' }, OUTSIDE),
        withLayer('layer: a symlink to /etc/shadow', { path: w.shadowLink }, /is a symlink/),
        withLayer('layer through a symlink to /etc', { path: `${w.cacheEtcDir}/shadow` }, /which is a symlink/),
        withLayer('layer: a FIFO (blocked the helper before)', { path: w.fifo }, /is a FIFO/),
        withLayer('layer: a device node', { path: w.device }, /is a device node/),
        withLayer("layer: root's file", { path: w.rootsFile }, /belongs to uid 0/),
        withLayer('layer with ..', { path: `${w.cacheDir}/../../../etc/shadow` }, /\.\. component/),
        withLayer('digest md5', { digest: 'md5:d41d8cd98f00b204e9800998ecf8427e' }, /digest/),
        withLayer('diff_id with ..', { diffId: '../x' }, /diff_id/),
        { what: 'no layers', params: { ...layers, layers: [] }, match: /1 to 512/ },
        { what: '513 layers', params: { ...layers, layers: Array.from({ length: 513 }, () => w.layer) }, match: /at most 512/ },
        ...each(layers, 'output', [['/etc/passwd', OUTSIDE], [w.shadowLink, /is a symlink/], [w.fifo, /is a FIFO/]]),
        ...each(layers, 'minSizeBytes', [[-1, /minimum size/], [1e18, /minimum size/], [1.5, /minimum size/]]),
        ...each(layers, 'user', [['root;id', /image user/], ['../../etc', /image user/]]),
        ...each(layers, 'devices', [['create']]),
      ],
    },
    'net.resolvedRoute': {
      valid: { bridge: w.bridge, port: 42069 },
      hostile: [...each({ bridge: w.bridge, port: 42069 }, 'bridge', ifaces()), ...each({ bridge: w.bridge, port: 42069 }, 'port', [[0, /DNS port/], [70_000, /DNS port/], [53.5, /DNS port/], ['53'], [-1, /DNS port/]])],
    },
    'net.resolvedUnroute': {
      valid: { bridge: w.bridge },
      hostile: each({ bridge: w.bridge }, 'bridge', ifaces()),
    },
  };
}

/** Methods that are not in the allow-list, and names that only look like it (or like an object's own keys). */
export const UNKNOWN_METHODS = ['helper.exec', 'net.deleteLink', 'vmm.kill', 'system.run', '__proto__', 'constructor', 'toString', 'helper.ping ', 'HELPER.PING', ''];
