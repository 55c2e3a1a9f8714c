import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { doctor, runChecks } from '../../src/cli/commands/doctor.ts';
import { applySafeFixes } from '../../src/cli/doctor-fix.ts';
import { firecrackerCheck, qemuCheck, toolChecks, versionChecks, type HostProbe } from '../../src/cli/doctor-host.ts';
import type { Output } from '../../src/cli/output.ts';
import type { CliContext } from '../../src/cli/context.ts';
import { DoctorService } from '../../src/daemon/services/doctor-service.ts';
import type { DoctorCheck } from '../../src/protocol/doctor.ts';
import type { KernelInfo, VmInfo } from '../../src/protocol/methods.ts';
import { loadConfig } from '../../src/system/config.ts';
import { AGENT_VERSION } from '../../src/system/guest-contract.ts';
import { HOST_TOOLS } from '../../src/system/host-tools.ts';
import { layoutAt } from '../../src/system/install-layout.ts';
import { resolvePaths } from '../../src/system/paths.ts';
import { VERSION } from '../../src/version.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-doctor-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function capture(): Output & { outText: () => string; errLines: string[] } {
  const out: string[] = [];
  const errLines: string[] = [];
  return { out: (t) => out.push(t), err: (t) => errLines.push(t), outText: () => out.join('\n'), errLines };
}

function probe(over: Partial<HostProbe> = {}): HostProbe {
  return {
    platform: 'linux', arch: 'x64', toolPresent: () => true, qemuVersion: () => 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18)',
    kvm: () => 'missing', checkStore: () => ({ migrations: { status: 0, message: 'the store is at schema version 4' }, integrity: 'ok' }),
    socketAlive: async () => false, uid: 0, ...over,
  };
}

function home(name: string): ReturnType<typeof resolvePaths> {
  return resolvePaths({ BANGER_HOME: path.join(tmp, name) });
}

const ctx = (output: Output): CliContext => ({ output, client: () => Promise.reject(new Error('no daemon in this test')), guestCommand: null, exit: () => undefined });

describe('banger doctor: host checks', () => {
  it('is one healthy line when every check passes, and exits 0', async () => {
    const out = capture();
    const status = await doctor(ctx(out), {}, { probe: probe(), paths: home('healthy'), daemon: async () => null });
    assert.equal(status, 0);
    assert.match(out.outText(), /^banger doctor: healthy \(\d+ checks\)$/);
  });

  it("says bangerd's accelerator decision on the healthy line, whole", async () => {
    const out = capture();
    const summary = 'accelerator: qemu/tcg (KVM cannot run this guest here (failed to set MSR 0x10a to 0x69); using software emulation); decided afresh with --fresh-accel on vm create, vm start or vm run';
    await doctor(ctx(out), {}, { probe: probe(), paths: home('accel'), daemon: async () => ({ version: { version: VERSION, commit: null, builtAt: null, node: 'v24', pid: 5 }, checks: [{ id: 'vmm.accel', status: 'ok', summary }] }) });
    assert.match(out.outText(), /^banger doctor: healthy \(\d+ checks; qemu\/tcg \(KVM cannot run this guest here \(failed to set MSR 0x10a to 0x69\); using software emulation\)\)$/);
  });

  it('names the Debian package of a missing program, with the command that installs it, and exits 1', async () => {
    const out = capture();
    const missing = probe({ toolPresent: (t) => t.name !== 'qemu-img' });
    const status = await doctor(ctx(out), {}, { probe: missing, paths: home('missing'), daemon: async () => null });
    assert.equal(status, 1);
    const text = out.outText();
    assert.match(text, /^FAIL {2}tools\.qemu-utils: qemu-img is missing .*Debian package qemu-utils$/m);
    assert.match(text, /fix: apt-get install -y --no-install-recommends qemu-utils {3}\(banger doctor --fix runs it\)/);
    // Only the failing row, not the passing ones.
    assert.doesNotMatch(text, /^OK/m);
  });

  it('groups programs by package and makes an optional one a warning', () => {
    const rows = toolChecks(probe({ toolPresent: (t) => t.pkg !== 'e2fsprogs' && t.pkg !== 'git' }));
    const e2fs = rows.find((r) => r.id === 'tools.e2fsprogs')!;
    assert.equal(e2fs.status, 'fail');
    assert.match(e2fs.summary, /^mkfs\.ext4, e2fsck, resize2fs, debugfs are missing/);
    assert.deepEqual(e2fs.safeFix, { kind: 'apt-install', packages: ['e2fsprogs'] });
    assert.equal(rows.find((r) => r.id === 'tools.git')!.status, 'warn');
  });

  it('knows a package for every program banger runs', () => {
    for (const tool of HOST_TOOLS) assert.match(tool.pkg, /^[a-z0-9][a-z0-9.+-]+$/, tool.name);
  });

  it('fails a QEMU older than supported and passes the tested series', () => {
    assert.equal(qemuCheck(probe({ qemuVersion: () => 'QEMU emulator version 6.2.0' }), 'q').status, 'fail');
    const ok = qemuCheck(probe(), 'q');
    assert.equal(ok.status, 'ok');
    assert.doesNotMatch(ok.summary, /newer than/);
    assert.match(qemuCheck(probe({ qemuVersion: () => 'QEMU emulator version 8.1.3' }), 'q').summary, /newer than 7\.2, the one tested/);
    assert.equal(qemuCheck(probe({ qemuVersion: () => null }), 'q').status, 'fail');
  });

  it('says which Firecracker runs, against the supported range, and when it runs without the jailer', () => {
    const vmm = { driver: 'auto' as const, firecrackerBin: 'firecracker', jailerBin: 'jailer' };
    const fc = (line: string | null) => probe({ firecrackerVersion: () => line });
    const ok = firecrackerCheck(fc('Firecracker v1.16.1'), vmm);
    assert.equal(ok.status, 'ok');
    assert.match(ok.summary, /^Firecracker 1\.16\.1 runs \(supported from 1\.14\.0; .*checked against a fake, never a real Firecracker\); under the jailer jailer$/);
    assert.match(firecrackerCheck(fc('Firecracker v1.17.0'), vmm).summary, /newer than 1\.16\.1/);
    assert.equal(firecrackerCheck(fc('Firecracker v1.10.1'), vmm).status, 'fail');
    assert.equal(firecrackerCheck(fc('Firecracker v1.16.1'), { ...vmm, jailerBin: null }).status, 'warn');
    assert.match(firecrackerCheck(fc(null), vmm).summary, /does not run here, so new VMs use QEMU/);
    assert.equal(firecrackerCheck(fc(null), { ...vmm, driver: 'firecracker' }).status, 'fail');
    assert.match(firecrackerCheck(fc('Firecracker v1.16.1'), { ...vmm, driver: 'qemu' }).summary, /not used/);
  });

  it('reports a store a newer banger wrote, and a damaged one', async () => {
    const report = await runChecks({
      probe: probe({ checkStore: () => ({ migrations: { status: 2, message: 'the store is at schema version 9, newer' }, integrity: 'row 3 missing from index' }) }),
      paths: home('store'), daemon: async () => null,
    });
    assert.equal(report.checks.find((c) => c.id === 'store.schema')!.status, 'fail');
    assert.match(report.checks.find((c) => c.id === 'store.integrity')!.summary, /damaged: row 3 missing from index/);
  });

  it('says where each VM default comes from', async () => {
    const paths = home('defaults');
    fs.mkdirSync(path.dirname(paths.configFile), { recursive: true });
    fs.writeFileSync(paths.configFile, '[vm_defaults]\nvcpus = 2\n');
    const report = await runChecks({ probe: probe(), paths, daemon: async () => null });
    assert.match(report.checks.find((c) => c.id === 'vm_defaults.vcpus')!.summary, /vcpus = 2 \(.*config\.toml \[vm_defaults\] vcpus\)/);
    assert.match(report.checks.find((c) => c.id === 'vm_defaults.disk')!.summary, /banger's default/);
  });

  it('fails a config that does not load', async () => {
    const paths = home('badconfig');
    fs.mkdirSync(path.dirname(paths.configFile), { recursive: true });
    fs.writeFileSync(paths.configFile, '[vm_defaults]\nvcpus = "many"\n');
    const report = await runChecks({ probe: probe(), paths, daemon: async () => null });
    assert.equal(report.checks.find((c) => c.id === 'config')!.status, 'fail');
  });

  it('finds a stale socket, and --fix removes it and says so', async () => {
    const paths = home('stale');
    fs.mkdirSync(paths.runDir, { recursive: true });
    // A socket file whose server is gone: a second name for it survives the server's close, which unlinks the first.
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(paths.daemonSocket, resolve));
    const copy = `${paths.daemonSocket}.keep`;
    fs.linkSync(paths.daemonSocket, copy);
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.renameSync(copy, paths.daemonSocket);
    const out = capture();
    const status = await doctor(ctx(out), { fix: true }, { probe: probe(), paths, daemon: async () => null });
    assert.equal(status, 0);
    assert.ok(out.errLines.some((l) => l.includes(`removed the stale socket ${paths.daemonSocket}`)), out.errLines.join('\n'));
    assert.equal(fs.existsSync(paths.daemonSocket), false);
    assert.match(out.outText(), /healthy/);
  });

  it('--fix installs the missing packages with apt-get as root, and only prints the command otherwise', async () => {
    const runs: string[][] = [];
    const row: DoctorCheck = { id: 'tools.qemu-utils', status: 'fail', summary: 'x', safeFix: { kind: 'apt-install', packages: ['qemu-utils'] } };
    // The first install fails (no package lists yet); apt-get update, then the install again.
    let installs = 0;
    const done = await applySafeFixes([row, { ...row }], {
      output: capture(), uid: 0,
      runner: async (command, args) => {
        runs.push([command, ...args]);
        return args[0] === 'install' && installs++ === 0 ? 100 : 0;
      },
    });
    assert.deepEqual(runs, [
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'qemu-utils'],
      ['apt-get', 'update', '-q'],
      ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'qemu-utils'],
    ]);
    assert.deepEqual(done, ['installed qemu-utils (apt-get install)']);
    const asUser = await applySafeFixes([row], { output: capture(), uid: 1000, runner: async () => assert.fail('must not run apt-get as a user') });
    assert.deepEqual(asUser, ['installing packages needs root; run: sudo apt-get install -y -q --no-install-recommends qemu-utils']);
  });

  it('creates missing directories of a store in use', async () => {
    const paths = home('dirs');
    fs.mkdirSync(path.dirname(paths.db), { recursive: true });
    fs.writeFileSync(paths.db, '');
    const report = await runChecks({ probe: probe(), paths, daemon: async () => null });
    const row = report.checks.find((c) => c.id === 'paths' && c.status === 'warn')!;
    assert.ok(row.safeFix?.kind === 'mkdir' && row.safeFix.paths.includes(paths.cacheDir));
    await applySafeFixes([row], { output: capture(), uid: 0 });
    assert.ok(fs.statSync(paths.cacheDir).isDirectory());
  });
});

describe('banger doctor: versions', () => {
  const built = { version: '0.2.0', commit: 'a'.repeat(40), builtAt: '2026-11-24T00:00:00Z' };
  const daemon = { ...built, node: 'v24', pid: 7 };

  it('warns when bangerd runs another build than the CLI', () => {
    const rows = versionChecks({ ...daemon, commit: 'b'.repeat(40) }, built, null);
    assert.equal(rows[0]!.status, 'warn');
    assert.match(rows[0]!.summary, /bangerd \(pid 7\) runs 0\.2\.0 \(bbbbbbbbbbbb\), this CLI is 0\.2\.0 \(aaaaaaaaaaaa\)/);
  });

  it('is silent when either side is a development build', () => {
    assert.equal(versionChecks({ ...daemon, version: '0.1.0', commit: null, builtAt: null }, built, null)[0]!.status, 'ok');
    assert.equal(versionChecks(daemon, { version: '0.1.0', commit: null, builtAt: null }, null)[0]!.status, 'ok');
  });

  it('compares this CLI with the installed release it belongs to', () => {
    const prefix = path.join(tmp, 'install');
    for (const [v, commit] of [['0.1.0', 'c'.repeat(40)], ['0.2.0', built.commit]] as const) {
      fs.mkdirSync(path.join(prefix, 'versions', v, 'dist'), { recursive: true });
      fs.writeFileSync(path.join(prefix, 'versions', v, 'package.json'), JSON.stringify({ version: v }));
      fs.writeFileSync(path.join(prefix, 'versions', v, 'dist', 'build-info.json'), JSON.stringify({ commit, builtAt: built.builtAt }));
    }
    fs.symlinkSync('versions/0.1.0', path.join(prefix, 'current'));
    const rows = versionChecks(null, built, layoutAt(prefix));
    assert.equal(rows[0]!.status, 'warn');
    assert.match(rows[0]!.summary, /this CLI is 0\.2\.0 .*the installed release is 0\.1\.0/);
    fs.rmSync(path.join(prefix, 'current'));
    fs.symlinkSync('versions/0.2.0', path.join(prefix, 'current'));
    assert.equal(versionChecks(null, built, layoutAt(prefix))[0]!.status, 'ok');
  });
});

describe('banger doctor: what bangerd knows', () => {
  const kernel = { id: '6.1.0', version: '6.1.0' } as KernelInfo;
  const vm = (over: Partial<VmInfo>): VmInfo => ({
    id: 'v1', name: 'calm-otter', state: 'running', image: 'debian-bookworm', kernel: 'k', vcpus: 1, memoryMib: 512, diskGib: 8, ip: '172.30.0.2',
    mac: 'm', tap: 't', accel: 'tcg', pid: 1, createdAt: 'c', nat: false, workspace: null, ...over,
  });

  function service(over: { vms?: VmInfo[]; linkExists?: boolean; origin?: 'local' | 'nowhere'; dnsError?: string } = {}) {
    const ops = new FakePrivilegedOps();
    ops.pong = { pid: 11, version: VERSION, network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null } };
    const runner = new FakeProcessRunner().on('ip', () => (over.linkExists === false ? { code: 1, stderr: 'Device "banger0" does not exist.' } : { code: 0, stdout: '[]' }));
    const config = loadConfig(path.join(tmp, 'no-such-config.toml'), {});
    const doctorService = new DoctorService({
      config: { ...config, dns: { ...config.dns, port: over.dnsError ? 5353 : 0 } }, ops, runner,
      driver: { knownAccel: () => ({ accel: 'tcg', reason: 'KVM did not boot a guest within 20s' }) },
      kernels: { hostDefault: () => ({ version: '6.1.0', kernel }) },
      images: { origin: async () => (over.origin === 'nowhere' ? { from: 'nowhere', detail: 'not registered' } : { from: 'local', detail: '/x/rootfs.ext4' }) },
      vms: { list: () => over.vms ?? [] },
      dns: () => ({ listening: false, address: null, error: over.dnsError ?? null }),
    });
    return { ops, doctorService };
  }

  it('is all ok on a daemon with nothing wrong, and says what the accelerator decision is', async () => {
    const rows = await service().doctorService.checks();
    assert.deepEqual(rows.filter((r) => r.status !== 'ok'), []);
    assert.match(rows.find((r) => r.id === 'vmm.accel')!.summary, /qemu\/tcg \(KVM did not boot a guest within 20s\); decided afresh with --fresh-accel/);
  });

  it('fails a helper serving another network than the config names', async () => {
    const { ops, doctorService } = service();
    ops.pong = { ...ops.pong, network: { ...ops.pong.network, netns: 'other' } };
    const row = (await doctorService.checks()).find((r) => r.id === 'helper')!;
    assert.equal(row.status, 'fail');
    assert.match(row.summary, /serves bridge banger0, subnet 172\.30\.0\.0\/24, netns other, but the config asks for .*host netns/);
  });

  it('fails an unreachable helper', async () => {
    const { ops, doctorService } = service();
    ops.fail('ping');
    const rows = await doctorService.checks();
    assert.equal(rows.find((r) => r.id === 'helper')!.status, 'fail');
  });

  it('fails a missing bridge while VMs run, and finds NAT rules missing or left over', async () => {
    const { ops, doctorService } = service({ vms: [vm({ nat: true })], linkExists: false });
    ops.natIps.add('172.30.0.9');
    const rows = await doctorService.checks();
    assert.equal(rows.find((r) => r.id === 'network.bridge')!.status, 'fail');
    const nat = rows.find((r) => r.id === 'network.nat')!;
    assert.equal(nat.status, 'warn');
    assert.match(nat.summary, /missing for calm-otter; left for 172\.30\.0\.9/);
  });

  it('warns about an older guest agent, a DNS server that did not start, and fails a default image from nowhere', async () => {
    const rows = await service({ vms: [vm({ agentVersion: '0.0.1' })], dnsError: 'port 5353 is taken', origin: 'nowhere' }).doctorService.checks();
    assert.match(rows.find((r) => r.id === 'vms.agent')!.summary, new RegExp(`calm-otter runs guest agent 0\\.0\\.1, older than ${AGENT_VERSION.replaceAll('.', '\\.')}`));
    assert.equal(rows.find((r) => r.id === 'dns')!.status, 'warn');
    assert.equal(rows.find((r) => r.id === 'image.default')!.status, 'fail');
  });

  it("adds bangerd's rows to the CLI's and is unhealthy on any of them", async () => {
    const report = await runChecks({
      probe: probe(), paths: home('with-daemon'),
      daemon: async () => ({ version: { version: VERSION, commit: null, builtAt: null, node: 'v24', pid: 5 }, checks: [{ id: 'dns', status: 'warn', summary: 'x', fix: 'y' }] }),
    });
    assert.equal(report.healthy, false);
    assert.ok(report.checks.some((c) => c.id === 'daemon' && /pid 5/.test(c.summary)));
  });
});
