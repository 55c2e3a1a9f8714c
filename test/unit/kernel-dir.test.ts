import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findKernelParts } from '../../src/kernel/kernel-dir.ts';
import { fails } from '../fakes/expect-error.ts';

/** An x86-64 ELF header: enough for kernelFormat to call the file a vmlinux. */
function fakeElf(): Buffer {
  const elf = Buffer.alloc(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  elf.writeUInt16LE(2, 0x10);
  elf.writeUInt16LE(0x3e, 0x12);
  return elf;
}

/** A bzImage setup header (boot protocol 2.15, 64-bit): enough for kernelFormat to call the file a bzImage. */
function fakeBzImage(): Buffer {
  const image = Buffer.alloc(0x1000);
  image[0x1f1] = 4;
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt16LE(0x020f, 0x206);
  image[0x211] = 1;
  image.writeUInt16LE(1, 0x236);
  return image;
}

describe('findKernelParts', () => {
  let base: string;
  before(() => {
    base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'banger-kdir-')));
  });
  after(() => fs.rmSync(base, { recursive: true, force: true }));

  /** A fresh directory holding `files` (relative path → contents; a directory when the value is null). */
  function tree(files: Record<string, Buffer | string | null>): string {
    const dir = fs.mkdtempSync(path.join(base, 'dir-'));
    for (const [rel, data] of Object.entries(files)) {
      const full = path.join(dir, rel);
      if (data === null) fs.mkdirSync(full, { recursive: true });
      else {
        fs.mkdirSync(path.dirname(full), { recursive: true });
        fs.writeFileSync(full, data);
      }
    }
    return dir;
  }

  it('finds an unpacked linux-image package: boot/vmlinuz-VERSION, its initrd and lib/modules/VERSION', () => {
    const v = '6.1.0-28-amd64';
    const dir = tree({
      [`boot/vmlinuz-${v}`]: fakeBzImage(),
      [`boot/initrd.img-${v}`]: 'initrd',
      [`boot/config-${v}`]: 'config',
      [`boot/System.map-${v}`]: 'map',
      [`lib/modules/${v}/modules.dep`]: '',
    });
    assert.deepEqual(findKernelParts(dir), {
      kernel: path.join(dir, 'boot', `vmlinuz-${v}`),
      format: 'bzimage',
      initrd: path.join(dir, 'boot', `initrd.img-${v}`),
      modulesDir: path.join(dir, 'lib/modules', v),
      version: v,
    });
  });

  it('finds a bare vmlinux with modules/ holding modules.dep, and no initrd', () => {
    const dir = tree({ vmlinux: fakeElf(), 'modules/modules.dep': '', 'vmlinux.o': 'object', 'vmlinux-gdb.py': 'script', 'vmlinux.symvers': '' });
    assert.deepEqual(findKernelParts(dir), { kernel: path.join(dir, 'vmlinux'), format: 'elf', initrd: null, modulesDir: path.join(dir, 'modules'), version: null });
  });

  it('takes the release from modules/VERSION when the file names have none', () => {
    const dir = tree({ bzImage: fakeBzImage(), 'initramfs.img': 'initrd', 'modules/6.8.1/modules.dep': '' });
    const parts = findKernelParts(dir);
    assert.equal(parts.version, '6.8.1');
    assert.equal(parts.modulesDir, path.join(dir, 'modules/6.8.1'));
    assert.equal(parts.initrd, path.join(dir, 'initramfs.img'));
  });

  it('ignores a modules directory without modules.dep, and a made-up name is not a release', () => {
    const dir = tree({ 'vmlinux-custom': fakeElf(), 'lib/modules/6.1.0/kernel': null, initrd: 'x' });
    assert.deepEqual(findKernelParts(dir), { kernel: path.join(dir, 'vmlinux-custom'), format: 'elf', initrd: path.join(dir, 'initrd'), modulesDir: null, version: null });
  });

  it('refuses two kernels, naming both', () => {
    const dir = tree({ vmlinux: fakeElf(), 'boot/vmlinuz-6.1.0-28-amd64': fakeBzImage() });
    assert.throws(() => findKernelParts(dir), fails('INVALID_ARGUMENT', /more than one kernel: boot\/vmlinuz-6\.1\.0-28-amd64, vmlinux/, { hint: true }));
  });

  it('counts one file under two names (a root-style vmlinuz link into boot/) as one kernel', () => {
    const v = '6.1.0-28-amd64';
    const dir = tree({ [`boot/vmlinuz-${v}`]: fakeBzImage(), [`boot/initrd.img-${v}`]: 'i' });
    fs.symlinkSync(`boot/vmlinuz-${v}`, path.join(dir, 'vmlinuz'));
    fs.symlinkSync(`boot/initrd.img-${v}`, path.join(dir, 'initrd.img'));
    const parts = findKernelParts(dir);
    assert.equal(parts.kernel, path.join(dir, 'boot', `vmlinuz-${v}`));
    assert.equal(parts.initrd, path.join(dir, 'boot', `initrd.img-${v}`));
    assert.equal(parts.version, v);
  });

  it("picks the initrd and modules of the kernel's release among several", () => {
    const dir = tree({
      'vmlinuz-6.1.0-28-amd64': fakeBzImage(),
      'initrd.img-6.1.0-27-amd64': 'old',
      'initrd.img-6.1.0-28-amd64': 'new',
      'lib/modules/6.1.0-27-amd64/modules.dep': '',
      'lib/modules/6.1.0-28-amd64/modules.dep': '',
    });
    const parts = findKernelParts(dir);
    assert.equal(parts.initrd, path.join(dir, 'initrd.img-6.1.0-28-amd64'));
    assert.equal(parts.modulesDir, path.join(dir, 'lib/modules/6.1.0-28-amd64'));
  });

  it('refuses several initrds or module directories it cannot tell apart', () => {
    const initrds = tree({ vmlinux: fakeElf(), 'initrd.img': 'a', 'initramfs-6.1.img': 'b' });
    assert.throws(() => findKernelParts(initrds), fails('INVALID_ARGUMENT', /more than one initrd: initramfs-6\.1\.img, initrd\.img/));
    const modules = tree({ vmlinux: fakeElf(), 'lib/modules/6.1.0/modules.dep': '', 'lib/modules/6.2.0/modules.dep': '' });
    assert.throws(() => findKernelParts(modules), fails('INVALID_ARGUMENT', /more than one modules directory/));
  });

  it('refuses parts of different releases', () => {
    const dir = tree({ 'vmlinuz-6.1.0-28-amd64': fakeBzImage(), 'lib/modules/6.1.0-27-amd64/modules.dep': '' });
    assert.throws(() => findKernelParts(dir), fails('INVALID_ARGUMENT', /mixes kernel releases: vmlinuz-6\.1\.0-28-amd64 is 6\.1\.0-28-amd64, lib\/modules\/6\.1\.0-27-amd64 is 6\.1\.0-27-amd64/, { hint: true }));
  });

  it('says what the directory has and what it looks for when there is no kernel', () => {
    const dir = tree({ 'README.md': 'hi', 'config-6.1': 'c', 'Image.gz': 'arm', 'initrd.img': 'i' });
    assert.throws(
      () => findKernelParts(dir),
      fails('KERNEL_NOT_FOUND', /no kernel in .*: it has Image\.gz, README\.md, config-6\.1, initrd\.img; looked for .*vmlinuz-\*.*arm64/, { hint: true }),
    );
    assert.throws(() => findKernelParts(tree({})), fails('KERNEL_NOT_FOUND', /it is empty/));
    const many = tree(Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`file-${String(i).padStart(2, '0')}`, ''])));
    assert.throws(() => findKernelParts(many), fails('KERNEL_NOT_FOUND', /file-07, … \(12 entries\)/));
  });

  it('never follows a symlink out of the directory', () => {
    const outside = tree({ 'vmlinuz-6.1.0-28-amd64': fakeBzImage(), 'modules/6.1.0-28-amd64/modules.dep': '', 'initrd.img': 'i' });
    const dir = tree({});
    fs.symlinkSync(path.join(outside, 'vmlinuz-6.1.0-28-amd64'), path.join(dir, 'vmlinuz'));
    fs.symlinkSync(path.join(outside, 'modules'), path.join(dir, 'modules'));
    fs.symlinkSync(outside, path.join(dir, 'boot'));
    assert.throws(() => findKernelParts(dir), fails('KERNEL_NOT_FOUND', /ignored symlinks that lead out of it: .*vmlinuz -> /));
    assert.throws(() => findKernelParts(dir), fails('KERNEL_NOT_FOUND', /ignored symlinks that lead out of it: .*boot -> /));
    // With a kernel of its own, the outside initrd and modules are simply not seen.
    fs.writeFileSync(path.join(dir, 'vmlinux'), fakeElf());
    fs.symlinkSync(path.join(outside, 'initrd.img'), path.join(dir, 'initrd.img'));
    assert.deepEqual(findKernelParts(dir), { kernel: path.join(dir, 'vmlinux'), format: 'elf', initrd: null, modulesDir: null, version: null });
  });

  it('refuses a kernel-named file that is not a kernel, and a DIR that is not a directory', () => {
    const dir = tree({ vmlinuz: 'not a kernel' });
    assert.throws(() => findKernelParts(dir), fails('KERNEL_NOT_FOUND', /vmlinuz is not a kernel image/));
    assert.throws(() => findKernelParts(path.join(dir, 'vmlinuz')), fails('INVALID_ARGUMENT', /is not a directory/, { hint: true }));
    assert.throws(() => findKernelParts(path.join(base, 'missing')), fails('INVALID_ARGUMENT', /does not exist/));
  });
});
