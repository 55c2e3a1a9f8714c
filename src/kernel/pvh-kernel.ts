// The uncompressed kernel QEMU boots fastest: an ELF vmlinux with a PVH entry point (a "Xen" ELF note of type
// XEN_ELFNOTE_PHYS32_ENTRY), which QEMU's microvm enters in 32-bit protected mode. A bzImage instead starts in
// real mode and decompresses itself, which under TCG cost about 3 s of each boot of Debian's xz-compressed kernel.
import fs from 'node:fs';
import path from 'node:path';
import type { ProcessRunner } from '../system/process.ts';
import { PVH_KERNEL_FILE } from '../system/guest-contract.ts';
import { extractVmlinux, kernelFormat } from './kernel-format.ts';

const PT_LOAD = 1;
const PT_NOTE = 4;
const XEN_ELFNOTE_PHYS32_ENTRY = 18;

/** Up to `length` bytes of the open file at `offset` (fewer at its end). */
function readAt(fd: number, offset: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  return buf.subarray(0, fs.readSync(fd, buf, 0, length, offset));
}

interface ProgramHeader {
  type: number;
  /** Where this header itself is in the file, so it can be rewritten. */
  at: number;
  offset: number;
  fileSize: number;
}

/** The program headers of an ELF64 little-endian file; none for any other file. */
function programHeaders(fd: number): ProgramHeader[] {
  const eh = readAt(fd, 0, 64);
  if (eh.length < 64 || eh.readUInt32BE(0) !== 0x7f454c46 || eh[4] !== 2 || eh[5] !== 1) return [];
  const phoff = Number(eh.readBigUInt64LE(0x20));
  const phentsize = eh.readUInt16LE(0x36);
  const phnum = eh.readUInt16LE(0x38);
  const headers: ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    const ph = readAt(fd, at, 56);
    if (ph.length < 56) continue;
    headers.push({ type: ph.readUInt32LE(0), at, offset: Number(ph.readBigUInt64LE(0x08)), fileSize: Number(ph.readBigUInt64LE(0x20)) });
  }
  return headers;
}

/** Whether the ELF64 file has a PVH entry point note. */
export function hasPvhEntry(file: string): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    for (const ph of programHeaders(fd)) {
      if (ph.type !== PT_NOTE || ph.fileSize > 1 << 20) continue;
      const notes = readAt(fd, ph.offset, ph.fileSize);
      for (let p = 0; p + 12 <= notes.length;) {
        const namesz = notes.readUInt32LE(p);
        const descsz = notes.readUInt32LE(p + 4);
        const type = notes.readUInt32LE(p + 8);
        const name = notes.subarray(p + 12, p + 12 + namesz).toString('latin1').replace(/\0+$/, '');
        if (name === 'Xen' && type === XEN_ELFNOTE_PHYS32_ENTRY) return true;
        p += 12 + align4(namesz) + align4(descsz);
      }
    }
    return false;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Lowers each loadable segment's file size to its last non-zero byte; the ELF rule that memory past the file size
 * is zero keeps the loaded kernel the same. QEMU keeps the kernel file mapped for the VM's life and reads every
 * byte it loads from it, so Debian's vmlinux, whose last segment carries its .bss, .brk and init scratch as 23 MiB
 * of stored zeros, added those 23 MiB to each VM's resident size; QEMU now zero-fills that memory instead.
 * Returns the bytes no longer loaded from the file.
 */
export function trimZeroTails(file: string): number {
  const fd = fs.openSync(file, 'r+');
  try {
    let trimmed = 0;
    for (const ph of programHeaders(fd)) {
      if (ph.type !== PT_LOAD) continue;
      const data = readAt(fd, ph.offset, ph.fileSize);
      let end = data.length;
      while (end > 0 && data[end - 1] === 0) end--;
      if (data.length < ph.fileSize || end === ph.fileSize) continue;
      const size = Buffer.alloc(8);
      size.writeBigUInt64LE(BigInt(end));
      fs.writeSync(fd, size, 0, 8, ph.at + 0x20);
      trimmed += ph.fileSize - end;
    }
    return trimmed;
  } finally {
    fs.closeSync(fd);
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/**
 * Puts the PVH-capable vmlinux inside the bzImage `kernel` beside it (PVH_KERNEL_FILE), once; nothing when the
 * kernel is already an ELF, has no PVH entry, or cannot be extracted: QEMU then boots the bzImage, only slower.
 * Returns its path or null.
 */
export async function ensurePvhKernel(kernel: string, runner: ProcessRunner): Promise<string | null> {
  const out = path.join(path.dirname(kernel), PVH_KERNEL_FILE);
  if (fs.existsSync(out)) return out;
  const partial = `${out}.extracting`;
  try {
    if (kernelFormat(kernel) !== 'bzimage') return null;
    await extractVmlinux(kernel, partial, runner);
    if (!hasPvhEntry(partial)) return null;
    trimZeroTails(partial);
    fs.renameSync(partial, out);
    return out;
  } catch {
    return null;
  } finally {
    fs.rmSync(partial, { force: true });
  }
}
