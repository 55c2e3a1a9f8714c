import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { extractVmlinux, kernelFormat, zstdFrameLength } from '../../src/kernel/kernel-format.ts';
import { BangerError } from '../../src/protocol/errors.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { fails } from '../fakes/expect-error.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

/** A minimal ELF header (plus some body, so compression has something to do). */
function fakeElf(options: { elfClass?: number; machine?: number; type?: number } = {}): Buffer {
  const elf = Buffer.alloc(4096, 0x90);
  elf.fill(0, 0, 64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, options.elfClass ?? 2, 1, 1], 0);
  elf.writeUInt16LE(options.type ?? 2, 0x10);
  elf.writeUInt16LE(options.machine ?? 0x3e, 0x12);
  return elf;
}

interface FakeBzImage {
  payload: Buffer;
  setupSects?: number;
  version?: number;
  /** Leave payload_offset and payload_length zero, as if the header did not say where the payload is. */
  undeclared?: boolean;
  /** Bytes placed between the protected-mode start and the payload (the decompressor's code, in a real one). */
  gap?: number;
  trailer?: Buffer;
}

/** The parts of an x86 boot protocol setup header that a bzImage reader looks at, and a payload after them. */
function fakeBzImage(options: FakeBzImage): Buffer {
  const sects = options.setupSects ?? 4;
  const pmStart = ((sects || 4) + 1) * 512;
  const gap = options.gap ?? 256;
  const image = Buffer.concat([Buffer.alloc(pmStart + gap, 0xcc), options.payload, options.trailer ?? Buffer.alloc(0)]);
  image.fill(0, 0x1f1, 0x250);
  image[0x1f1] = sects;
  image.writeUInt16LE(0xaa55, 0x1fe);
  image.write('HdrS', 0x202, 'latin1');
  image.writeUInt16LE(options.version ?? 0x020f, 0x206);
  image[0x211] = 0x01;
  image.writeUInt16LE(0x01, 0x236);
  if (!options.undeclared) {
    image.writeUInt32LE(gap, 0x248);
    image.writeUInt32LE(options.payload.length, 0x24c);
  }
  return image;
}

function hostKernel(): string | null {
  try {
    const name = fs.readdirSync('/boot').filter((n) => n.startsWith('vmlinuz-')).sort().at(-1);
    return name ? path.join('/boot', name) : null;
  } catch {
    return null;
  }
}

function hasXz(): boolean {
  try {
    execFileSync('xz', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('kernelFormat', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-kformat-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function file(name: string, data: Buffer | string): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, data);
    return p;
  }

  it('tells an x86-64 ELF vmlinux from a bzImage', () => {
    assert.equal(kernelFormat(file('vmlinux', fakeElf())), 'elf');
    assert.equal(kernelFormat(file('bzImage', fakeBzImage({ payload: gzipSync(fakeElf()) }))), 'bzimage');
  });

  it('refuses 32-bit, foreign and object-file ELFs, saying which', () => {
    assert.throws(() => kernelFormat(file('elf32', fakeElf({ elfClass: 1, machine: 3 }).subarray(0, 52))), fails('KERNEL_NOT_FOUND', /32-bit ELF/, { hint: true }));
    assert.throws(() => kernelFormat(file('arm64', fakeElf({ machine: 0xb7 }))), fails('KERNEL_NOT_FOUND', /ELF for arm64, not x86-64/));
    assert.throws(() => kernelFormat(file('module.ko', fakeElf({ type: 1 }))), fails('KERNEL_NOT_FOUND', /object file/));
    assert.throws(() => kernelFormat(file('short-elf', fakeElf().subarray(0, 20))), fails('KERNEL_NOT_FOUND', /truncated/));
  });

  it('refuses a bzImage older than boot protocol 2.08, a 32-bit one and a cut-off header', () => {
    assert.throws(() => kernelFormat(file('old', fakeBzImage({ payload: gzipSync(fakeElf()), version: 0x0206 }))), fails('KERNEL_NOT_FOUND', /boot protocol 2\.06 is older than 2\.08/));
    const i386 = fakeBzImage({ payload: gzipSync(fakeElf()) });
    i386.writeUInt16LE(0, 0x236);
    assert.throws(() => kernelFormat(file('i386', i386)), fails('KERNEL_NOT_FOUND', /32-bit kernel/));
    const cut = fakeBzImage({ payload: gzipSync(fakeElf()) }).subarray(0, 0x220);
    assert.throws(() => kernelFormat(file('cut', cut)), fails('KERNEL_NOT_FOUND', /inside its setup header/, { hint: true }));
  });

  it('refuses anything else with a hint, naming what it looks like', () => {
    assert.throws(() => kernelFormat(file('empty', '')), fails('KERNEL_NOT_FOUND', /is empty/, { hint: true }));
    assert.throws(() => kernelFormat(file('text', 'hello, this is not a kernel\n'.repeat(40))), fails('KERNEL_NOT_FOUND', /neither the ELF magic nor a bzImage/, { hint: true }));
    assert.throws(() => kernelFormat(file('vmlinux.gz', gzipSync(fakeElf()))), fails('KERNEL_NOT_FOUND', /gzip-compressed file: decompress it first/));
    const arm = Buffer.alloc(128);
    arm.write('ARM\x64', 0x38, 'latin1');
    assert.throws(() => kernelFormat(file('Image', arm)), fails('KERNEL_NOT_FOUND', /arm64 Image/));
    assert.throws(() => kernelFormat(path.join(dir, 'missing')), fails('KERNEL_NOT_FOUND', /cannot read/, { hint: true }));
  });
});

describe('extractVmlinux', () => {
  let dir: string;
  let n = 0;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-extract-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Writes the image, extracts it, and returns the output path (whose leftovers the caller can check). */
  function paths(image: Buffer): { input: string; out: string } {
    n += 1;
    const input = path.join(dir, `bzImage-${n}`);
    fs.writeFileSync(input, image);
    return { input, out: path.join(dir, `vmlinux-${n}`) };
  }

  function leftovers(out: string): string[] {
    return fs.readdirSync(dir).filter((name) => name.startsWith(`${path.basename(out)}.`));
  }

  it('finds a gzip payload from the setup header and writes the ELF', async () => {
    const elf = fakeElf();
    const { input, out } = paths(fakeBzImage({ payload: gzipSync(elf), trailer: Buffer.from('trailing data after the payload') }));
    await extractVmlinux(input, out, new FakeProcessRunner());
    assert.deepEqual(fs.readFileSync(out), elf);
    assert.equal(kernelFormat(out), 'elf');
    assert.deepEqual(leftovers(out), []);
  });

  it('reads setup_sects 0 as 4', async () => {
    const elf = fakeElf();
    const { input, out } = paths(fakeBzImage({ payload: gzipSync(elf), setupSects: 0 }));
    await extractVmlinux(input, out, new FakeProcessRunner());
    assert.deepEqual(fs.readFileSync(out), elf);
  });

  it('scans for the payload when the header does not locate it, skipping false starts', async () => {
    const elf = fakeElf();
    // A stray gzip magic before the real payload, and data after it, as in a real image.
    const payload = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]), gzipSync(elf), Buffer.alloc(64, 0xee)]);
    const { input, out } = paths(fakeBzImage({ payload, undeclared: true }));
    await extractVmlinux(input, out, new FakeProcessRunner());
    assert.deepEqual(fs.readFileSync(out), elf);
  });

  it('decompresses a zstd payload, ignoring the size the kernel appends', async () => {
    const elf = fakeElf();
    const size = Buffer.alloc(4);
    size.writeUInt32LE(elf.length);
    const { input, out } = paths(fakeBzImage({ payload: Buffer.concat([zstdCompressSync(elf), size]) }));
    await extractVmlinux(input, out, new FakeProcessRunner());
    assert.deepEqual(fs.readFileSync(out), elf);
  });

  it('measures a zstd frame, and says when it is cut short', () => {
    const frame = zstdCompressSync(fakeElf());
    assert.equal(zstdFrameLength(Buffer.concat([frame, Buffer.from('more')])), frame.length);
    assert.equal(zstdFrameLength(frame.subarray(0, frame.length - 2)), null);
  });

  it('runs xz -dc --single-stream for an xz payload, writing straight to the partial file', async () => {
    const elf = fakeElf();
    const runner = new FakeProcessRunner().on('xz', ({ options }) => {
      fs.writeSync(options.stdoutFd ?? -1, elf);
      return { code: 0 };
    });
    const payload = Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(100, 1)]);
    const { input, out } = paths(fakeBzImage({ payload }));
    await extractVmlinux(input, out, runner);
    assert.deepEqual(fs.readFileSync(out), elf);
    const [call] = runner.callsTo('xz');
    assert.deepEqual(call?.args.slice(0, 3), ['-dc', '--single-stream', '--']);
    assert.equal(fs.existsSync(call?.args[3] ?? ''), false, 'the payload copy handed to xz is removed');
    assert.deepEqual(leftovers(out), []);
  });

  it('decompresses a real xz payload with the xz program', { skip: hasXz() ? false : 'xz is not installed' }, async () => {
    const elf = fakeElf();
    const payload = execFileSync('xz', ['-c', '--check=crc32'], { input: elf });
    const { input, out } = paths(fakeBzImage({ payload: Buffer.concat([payload, Buffer.from([0, 16, 0, 0])]) }));
    await extractVmlinux(input, out, new NodeProcessRunner());
    assert.deepEqual(fs.readFileSync(out), elf);
  });

  it('passes on a missing xz as MISSING_TOOL and leaves nothing behind', async () => {
    const runner = new FakeProcessRunner().on('xz', () => {
      throw new BangerError('MISSING_TOOL', 'xz is not installed or not on PATH');
    });
    const payload = Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(100, 1)]);
    const { input, out } = paths(fakeBzImage({ payload }));
    await assert.rejects(extractVmlinux(input, out, runner), fails('MISSING_TOOL', /xz/));
    assert.equal(fs.existsSync(out), false);
    assert.deepEqual(leftovers(out), []);
  });

  it('refuses a payload that decompresses to a 32-bit ELF, and removes the partial file', async () => {
    const { input, out } = paths(fakeBzImage({ payload: gzipSync(fakeElf({ elfClass: 1, machine: 3 })) }));
    await assert.rejects(extractVmlinux(input, out, new FakeProcessRunner()), fails('KERNEL_NOT_FOUND', /32-bit ELF/, { hint: true }));
    assert.equal(fs.existsSync(out), false);
    assert.deepEqual(leftovers(out), []);
  });

  it('refuses a corrupt or cut-off gzip payload', async () => {
    const gz = gzipSync(fakeElf());
    gz[gz.length - 6] = (gz[gz.length - 6] ?? 0) ^ 0xff;
    const corrupt = paths(fakeBzImage({ payload: gz }));
    await assert.rejects(extractVmlinux(corrupt.input, corrupt.out, new FakeProcessRunner()), fails('KERNEL_NOT_FOUND', /checksum/, { hint: true }));
    assert.deepEqual(leftovers(corrupt.out), []);
    // Cut off: payload_length now runs past the end of the file, so the scan tries the truncated stream and fails.
    const whole = fakeBzImage({ payload: gzipSync(fakeElf()) });
    const cut = paths(whole.subarray(0, whole.length - 40));
    await assert.rejects(extractVmlinux(cut.input, cut.out, new FakeProcessRunner()), fails('KERNEL_NOT_FOUND', /cannot extract/, { hint: true }));
    assert.equal(fs.existsSync(cut.out), false);
    assert.deepEqual(leftovers(cut.out), []);
  });

  it('names a compression it cannot read', async () => {
    const { input, out } = paths(fakeBzImage({ payload: Buffer.concat([Buffer.from([0x02, 0x21, 0x4c, 0x18]), Buffer.alloc(64, 7)]) }));
    await assert.rejects(extractVmlinux(input, out, new FakeProcessRunner()), fails('KERNEL_NOT_FOUND', /lz4-compressed/, { hint: true }));
  });

  it('says when the header locates nothing and no stream is found', async () => {
    const { input, out } = paths(fakeBzImage({ payload: Buffer.alloc(256, 0x42), undeclared: true }));
    await assert.rejects(extractVmlinux(input, out, new FakeProcessRunner()), fails('KERNEL_NOT_FOUND', /no gzip, xz or zstd stream/, { hint: true }));
  });

  it('refuses an ELF, which needs no extracting', async () => {
    const input = path.join(dir, 'already-elf');
    fs.writeFileSync(input, fakeElf());
    await assert.rejects(extractVmlinux(input, path.join(dir, 'unused'), new FakeProcessRunner()), fails('INVALID_ARGUMENT', /already an ELF vmlinux/));
  });

  const host = hostKernel();
  it("extracts the host's own kernel to an x86-64 ELF", { skip: host ? false : 'no /boot/vmlinuz-* on this machine' }, async () => {
    const kernel = host ?? '';
    assert.equal(kernelFormat(kernel), 'bzimage');
    const out = path.join(dir, 'host-vmlinux');
    await extractVmlinux(kernel, out, new NodeProcessRunner());
    assert.equal(kernelFormat(out), 'elf');
    // Decompressed, the kernel is several times the size of its bzImage.
    assert.ok(fs.statSync(out).size > fs.statSync(kernel).size, 'the vmlinux is larger than the bzImage');
    assert.deepEqual(leftovers(out), []);
  });
});
