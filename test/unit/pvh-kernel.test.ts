import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ensurePvhKernel, hasPvhEntry, trimZeroTails } from '../../src/kernel/pvh-kernel.ts';
import { qemuBootKernel } from '../../src/vmm/qemu/qemu-driver.ts';
import { PVH_KERNEL_FILE } from '../../src/system/guest-contract.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

/** An x86-64 ELF with one PT_NOTE segment holding a note named `name` of type `type`. */
function elfWithNote(name: string, type: number): Buffer {
  const header = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(header);
  header.writeUInt16LE(2, 0x10); // ET_EXEC
  header.writeUInt16LE(0x3e, 0x12); // x86-64
  header.writeBigUInt64LE(64n, 0x20); // e_phoff
  header.writeUInt16LE(56, 0x36); // e_phentsize
  header.writeUInt16LE(1, 0x38); // e_phnum
  const nameBytes = Buffer.from(`${name}\0`);
  const namePadded = Buffer.concat([nameBytes, Buffer.alloc((4 - (nameBytes.length % 4)) % 4)]);
  const note = Buffer.concat([Buffer.alloc(12), namePadded, Buffer.alloc(8)]);
  note.writeUInt32LE(nameBytes.length, 0);
  note.writeUInt32LE(8, 4);
  note.writeUInt32LE(type, 8);
  const ph = Buffer.alloc(56);
  ph.writeUInt32LE(4, 0); // PT_NOTE
  ph.writeBigUInt64LE(120n, 0x08);
  ph.writeBigUInt64LE(BigInt(note.length), 0x20);
  return Buffer.concat([header, ph, note]);
}

describe('hasPvhEntry', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-pvh-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, data: Buffer): string => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, data);
    return f;
  };

  it('finds the Xen PHYS32_ENTRY note', () => {
    assert.equal(hasPvhEntry(file('pvh', elfWithNote('Xen', 18))), true);
  });

  it('says no for other notes, other files and short files', () => {
    assert.equal(hasPvhEntry(file('gnu', elfWithNote('GNU', 18))), false);
    assert.equal(hasPvhEntry(file('xen-other', elfWithNote('Xen', 6))), false);
    assert.equal(hasPvhEntry(file('text', Buffer.from('not an elf at all'))), false);
    assert.equal(hasPvhEntry(file('empty', Buffer.alloc(0))), false);
  });
});

describe('ensurePvhKernel and qemuBootKernel', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-pvh-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps nothing for a kernel that is not a bzImage, and QEMU boots the file itself', async () => {
    const kernel = path.join(dir, 'vmlinux');
    fs.writeFileSync(kernel, elfWithNote('Xen', 18));
    assert.equal(await ensurePvhKernel(kernel, new FakeProcessRunner()), null);
    assert.deepEqual(fs.readdirSync(dir), ['vmlinux']);
    assert.equal(qemuBootKernel(kernel), kernel);
  });

  it('QEMU boots the PVH vmlinux kept beside a bzImage', () => {
    const sub = fs.mkdtempSync(path.join(dir, 'k-'));
    const kernel = path.join(sub, 'vmlinuz');
    fs.writeFileSync(kernel, 'bz');
    fs.writeFileSync(path.join(sub, PVH_KERNEL_FILE), elfWithNote('Xen', 18));
    assert.equal(qemuBootKernel(kernel), path.join(sub, PVH_KERNEL_FILE));
  });
});

/** An ELF with two PT_LOAD segments: `a` and `b` stored back to back after the headers, file size = memory size. */
function elfWithLoads(a: Buffer, b: Buffer): Buffer {
  const header = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(header);
  header.writeBigUInt64LE(64n, 0x20);
  header.writeUInt16LE(56, 0x36);
  header.writeUInt16LE(2, 0x38);
  const phs = [a, b].map((data, i) => {
    const ph = Buffer.alloc(56);
    ph.writeUInt32LE(1, 0); // PT_LOAD
    ph.writeBigUInt64LE(BigInt(64 + 112 + (i === 0 ? 0 : a.length)), 0x08);
    ph.writeBigUInt64LE(BigInt(data.length), 0x20); // p_filesz
    ph.writeBigUInt64LE(BigInt(data.length), 0x28); // p_memsz
    return ph;
  });
  return Buffer.concat([header, ...phs, a, b]);
}

const fileSizes = (elf: Buffer): number[] => [0, 1].map((i) => Number(elf.readBigUInt64LE(64 + i * 56 + 0x20)));
const memSizes = (elf: Buffer): number[] => [0, 1].map((i) => Number(elf.readBigUInt64LE(64 + i * 56 + 0x28)));

describe('trimZeroTails', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-trim-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("lowers a segment's file size to its last non-zero byte and leaves its memory size and bytes alone", () => {
    const file = path.join(dir, 'vmlinux');
    const a = Buffer.from([1, 2, 3, 4]);
    const b = Buffer.concat([Buffer.from([9, 0, 7]), Buffer.alloc(4096)]);
    const original = elfWithLoads(a, b);
    fs.writeFileSync(file, original);
    assert.equal(trimZeroTails(file), 4096);
    const trimmed = fs.readFileSync(file);
    assert.deepEqual(fileSizes(trimmed), [4, 3]);
    assert.deepEqual(memSizes(trimmed), [4, 4099]);
    assert.equal(trimmed.length, original.length);
    assert.deepEqual(trimmed.subarray(176), original.subarray(176), 'the segments themselves are unchanged');
    assert.equal(trimZeroTails(file), 0, 'a second pass finds nothing to trim');
  });

  it('leaves a file that is not a 64-bit ELF alone', () => {
    const file = path.join(dir, 'not-elf');
    fs.writeFileSync(file, Buffer.alloc(128));
    assert.equal(trimZeroTails(file), 0);
    assert.deepEqual(fs.readFileSync(file), Buffer.alloc(128));
  });
});
