// Which VMM new VMs get ([vmm] driver, and "auto"'s reasoning), and that each VM stays with the driver that made it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/system/config.ts';
import type { KernelInfo } from '../../src/protocol/methods.ts';
import { chooseDriver, type DriverChoiceInput } from '../../src/vmm/driver-choice.ts';
import { vmFilesIn } from '../../src/vmm/driver.ts';
import { VmmRouter } from '../../src/vmm/vmm-router.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeVmmDriver } from '../fakes/fake-vmm-driver.ts';

const kernel: KernelInfo = { id: 'k', version: '6.1', kernelPath: '/k', initrdPath: '/i', source: 't', createdAt: 't', format: 'elf' };
const signal = new AbortController().signal;

describe('[vmm] driver, firecracker_bin and jailer_bin in config.toml', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-vmmcfg-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const load = (toml: string) => {
    const file = path.join(dir, 'config.toml');
    fs.writeFileSync(file, toml);
    return loadConfig(file, {});
  };

  it('defaults to auto, firecracker and jailer on PATH; jailer_bin = "" means no jailer', () => {
    assert.deepEqual([load('').vmm.driver, load('').vmm.firecrackerBin, load('').vmm.jailerBin], ['auto', 'firecracker', 'jailer']);
    const c = load('[vmm]\ndriver = "firecracker"\nfirecracker_bin = "/opt/fc/firecracker"\njailer_bin = ""\n');
    assert.deepEqual([c.vmm.driver, c.vmm.firecrackerBin, c.vmm.jailerBin], ['firecracker', '/opt/fc/firecracker', null]);
  });

  it('refuses other drivers and program names with spaces or quotes', () => {
    assert.throws(() => load('[vmm]\ndriver = "cloud-hypervisor"\n'), fails('INVALID_ARGUMENT', /vmm\.driver = "cloud-hypervisor"/));
    assert.throws(() => load('[vmm]\nfirecracker_bin = "fire cracker"\n'), fails('INVALID_ARGUMENT', /vmm\.firecracker_bin = "fire cracker" is not a program/));
    assert.throws(() => load('[vmm]\njailer_bin = "a;b"\n'), fails('INVALID_ARGUMENT', /vmm\.jailer_bin/));
  });
});

describe('chooseDriver', () => {
  const auto: DriverChoiceInput = { configured: 'auto', firecrackerBin: 'firecracker', firecrackerFound: '/usr/bin/firecracker', kvmUsable: true, kvmVerdict: { runs: true, reason: 'KVM booted a test guest in 0.8s' } };

  it('follows config, and for auto wants the binary, a usable /dev/kvm and a KVM that runs guests', () => {
    assert.deepEqual(chooseDriver({ ...auto, configured: 'qemu' }), { driver: 'qemu', reason: 'vmm.driver = "qemu" in config' });
    assert.equal(chooseDriver({ ...auto, configured: 'firecracker', firecrackerFound: null })?.driver, 'firecracker');
    assert.deepEqual(chooseDriver({ ...auto, firecrackerVersion: '1.16.1' }), { driver: 'firecracker', reason: 'auto: /usr/bin/firecracker (Firecracker v1.16.1) is here and KVM runs guests' });
    assert.match(chooseDriver(auto)!.reason, /its --version said nothing banger reads/);
    assert.deepEqual(chooseDriver({ ...auto, firecrackerVersion: '1.10.0' }), { driver: 'qemu', reason: 'auto: Firecracker v1.10.0 is older than 1.14.0, the oldest banger drives' });
    assert.equal(chooseDriver({ ...auto, configured: 'firecracker', firecrackerVersion: '1.16.1' })!.reason, 'vmm.driver = "firecracker" in config; Firecracker v1.16.1');
    assert.match(chooseDriver({ ...auto, firecrackerFound: null })!.reason, /no Firecracker binary \(vmm.firecracker_bin = "firecracker"\)/);
    assert.match(chooseDriver({ ...auto, kvmUsable: false })!.reason, /\/dev\/kvm is not usable/);
    assert.deepEqual(chooseDriver({ ...auto, kvmVerdict: { runs: false, reason: 'a KVM test guest hung' } }), { driver: 'qemu', reason: 'auto: Firecracker is here but KVM cannot run a guest (a KVM test guest hung)' });
    assert.equal(chooseDriver({ ...auto, kvmVerdict: null }), null);
  });
});

describe('VmmRouter', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-router-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function router(o: { kvm: 'kvm' | 'tcg'; known: boolean; found?: boolean }) {
    const qemu = new FakeVmmDriver();
    const firecracker = new FakeVmmDriver();
    firecracker.accelChoice = { accel: 'kvm', reason: 'Firecracker runs guests only with KVM' };
    const gate = o.known ? null : qemu.decideLater({ accel: o.kvm, reason: `verdict ${o.kvm}` });
    if (o.known) qemu.accelChoice = { accel: o.kvm, reason: `verdict ${o.kvm}` };
    const r = new VmmRouter({
      qemu, firecracker, configured: 'auto', firecrackerBin: 'firecracker', firecrackerFound: o.found === false ? null : '/usr/bin/firecracker', kvmUsable: true,
      firecrackerVersion: '1.16.1', vmDir: (id) => path.join(dir, id),
    });
    return { r, qemu, firecracker, open: gate };
  }
  const files = (id: string) => vmFilesIn(path.join(dir, id));
  const disk = { baseImage: '/img', workDiskGib: 1, signal };

  it('with a KVM verdict already known, picks Firecracker at once and says why on the spec line', () => {
    const { r } = router({ kvm: 'kvm', known: true });
    const choice = r.knownAccel(kernel)!;
    assert.equal(choice.vmm, 'firecracker');
    assert.equal(choice.reason, 'Firecracker runs guests only with KVM; auto: /usr/bin/firecracker (Firecracker v1.16.1) is here and KVM runs guests');
    assert.equal(r.name, 'firecracker');
  });

  it('waits for the first KVM verdict; the disks a create makes meanwhile wait with it', async () => {
    const { r, qemu, firecracker, open } = router({ kvm: 'tcg', known: false });
    assert.equal(r.knownAccel(kernel), null);
    const decided = r.selectAccel(kernel, { signal });
    const prepared = r.prepareDisks(files('aaaa00000001'), disk);
    open!();
    assert.deepEqual(await decided, { accel: 'tcg', reason: 'verdict tcg; auto: Firecracker is here but KVM cannot run a guest (verdict tcg)', vmm: 'qemu' });
    await prepared;
    assert.equal(qemu.preparedDisks.length, 1);
    assert.equal(firecracker.preparedDisks.length, 0);
    assert.equal(fs.readFileSync(path.join(dir, 'aaaa00000001', 'vmm'), 'utf8'), 'qemu\n');
  });

  it('keeps every VM with the driver that made it, and VMs older than the record with QEMU', async () => {
    const { r, qemu, firecracker } = router({ kvm: 'kvm', known: true });
    // A create asks for the accelerator (and so the driver) before it makes disks.
    r.knownAccel(kernel);
    await r.prepareDisks(files('bbbb00000001'), disk);
    fs.mkdirSync(path.join(dir, 'cccc00000001'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'cccc00000001', 'vmm'), 'qemu\n');
    fs.mkdirSync(path.join(dir, 'dddd00000001'), { recursive: true });
    const spec = (id: string) => ({ vmId: id, vcpus: 1, memoryMib: 512, kernel, files: files(id), net: { tap: 'bgt00000000', mac: '52:54:00:00:00:01' }, netns: null, accel: 'kvm' as const });
    const fc = await r.boot(spec('bbbb00000001'), signal);
    const old = await r.boot(spec('cccc00000001'), signal);
    await r.boot(spec('dddd00000001'), signal);
    assert.deepEqual(firecracker.boots.map((b) => b.vmId), ['bbbb00000001']);
    assert.deepEqual(qemu.boots.map((b) => b.vmId), ['cccc00000001', 'dddd00000001']);
    assert.ok(r.isAlive('bbbb00000001', fc.pid) && r.isAlive('cccc00000001', old.pid));
    await r.stop({ vmId: 'bbbb00000001', pid: fc.pid, files: files('bbbb00000001') });
    assert.deepEqual(firecracker.stops.map((s) => s.vmId), ['bbbb00000001']);
  });

  it('says what to do for a Firecracker VM when Firecracker is no longer configured', async () => {
    const qemu = new FakeVmmDriver();
    const r = new VmmRouter({ qemu, firecracker: null, configured: 'auto', firecrackerBin: 'firecracker', firecrackerFound: null, kvmUsable: true, vmDir: (id) => path.join(dir, id) });
    fs.mkdirSync(path.join(dir, 'eeee00000001'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'eeee00000001', 'vmm'), 'firecracker\n');
    assert.throws(() => r.isAlive('eeee00000001', 5), fails('VMM_FAILED', /made for Firecracker/));
    assert.match(r.knownAccel(kernel)!.reason, /auto: no Firecracker binary/);
  });
});
