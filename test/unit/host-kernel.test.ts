import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { findHostKernel, hostKernelId } from '../../src/kernel/host-kernel.ts';
import { INITRD_REVISION, readModule } from '../../src/kernel/initrd.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { fails } from '../fakes/expect-error.ts';

describe('findHostKernel', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-hostkernel-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function host(versions: string[], withoutModules: string[] = []) {
    const root = fs.mkdtempSync(path.join(dir, 'host-'));
    const source = { bootDir: path.join(root, 'boot'), modulesRoot: path.join(root, 'modules'), busybox: '/bin/busybox' };
    fs.mkdirSync(source.bootDir);
    for (const v of versions) {
      fs.writeFileSync(path.join(source.bootDir, `vmlinuz-${v}`), 'k');
      if (!withoutModules.includes(v)) {
        fs.mkdirSync(path.join(source.modulesRoot, v), { recursive: true });
        fs.writeFileSync(path.join(source.modulesRoot, v, 'modules.dep'), '');
      }
    }
    return source;
  }

  it('picks the newest version, comparing numbers as numbers', () => {
    assert.equal(findHostKernel(host(['6.1.0-9-amd64', '6.1.0-41-amd64', '5.10.0-30-amd64'])).version, '6.1.0-41-amd64');
  });

  it('prefers the plain flavour over a newer cloud or rt build', () => {
    assert.equal(findHostKernel(host(['6.1.0-40-amd64', '6.1.0-41-cloud-amd64', '6.1.0-41-rt-amd64'])).version, '6.1.0-40-amd64');
    assert.equal(findHostKernel(host(['6.1.0-41-cloud-amd64'])).version, '6.1.0-41-cloud-amd64');
  });

  it('ignores a kernel without modules, and says what to install when there is none', () => {
    assert.equal(findHostKernel(host(['6.1.0-40-amd64', '6.1.0-41-amd64'], ['6.1.0-41-amd64'])).version, '6.1.0-40-amd64');
    assert.throws(() => findHostKernel(host([])), fails('KERNEL_NOT_FOUND', /no kernel with modules/));
  });

  it("names the kernel by its version and the initrd's revision", () => {
    assert.equal(hostKernelId('6.1.0-41-amd64'), `host-6.1.0-41-amd64-${INITRD_REVISION}`);
    assert.match(INITRD_REVISION, /^[0-9a-f]{8}$/);
  });
});

describe('readModule', () => {
  let dir: string;
  const runner = new NodeProcessRunner();
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-modules-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('returns a compressed module uncompressed', async () => {
    const elf = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.alloc(1000, 7)]);
    fs.writeFileSync(path.join(dir, 'ok.ko.gz'), gzipSync(elf));
    fs.writeFileSync(path.join(dir, 'plain.ko'), elf);
    assert.deepEqual(await readModule(runner, path.join(dir, 'ok.ko.gz')), elf);
    assert.deepEqual(await readModule(runner, path.join(dir, 'plain.ko')), elf);
  });

  it('refuses a module that does not decompress to an ELF object, instead of packing garbage', async () => {
    fs.writeFileSync(path.join(dir, 'broken.ko.xz'), 'not xz at all');
    await assert.rejects(readModule(runner, path.join(dir, 'broken.ko.xz')), fails('KERNEL_NOT_FOUND', /did not decompress to an ELF object/, { hint: true }));
  });
});
