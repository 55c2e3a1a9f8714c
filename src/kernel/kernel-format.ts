// What kind of image a kernel file is, and turning a bzImage into the ELF vmlinux inside it. QEMU boots both;
// Firecracker boots only an ELF vmlinux, so every kernel banger stores records its format.
import fs from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { BangerError, messageOf } from '../protocol/errors.ts';
import { NodeProcessRunner, runChecked, type ProcessRunner } from '../system/process.ts';

export type KernelFormat = 'elf' | 'bzimage';

/** Enough of the file for the ELF header and the bzImage setup header (which ends at 0x250 in protocol 2.08+). */
const HEAD_BYTES = 0x1000;

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const ELF64_HEADER_BYTES = 64;
const EM_X86_64 = 0x3e;
const ET_REL = 1;

/** e_machine values a user may plausibly hand us, for messages. */
const ELF_MACHINES: ReadonlyMap<number, string> = new Map([
  [0x03, 'i386'],
  [0x08, 'MIPS'],
  [0x14, 'PowerPC'],
  [0x15, 'PowerPC64'],
  [0x16, 's390'],
  [0x28, 'ARM'],
  [0xb7, 'arm64'],
  [0xf3, 'RISC-V'],
  [0x102, 'LoongArch'],
]);

// Offsets in the x86 boot protocol's setup header (Documentation/arch/x86/boot.rst).
const SETUP_SECTS = 0x1f1;
const HEADER_MAGIC = 0x202;
const PROTOCOL_VERSION = 0x206;
const LOADFLAGS = 0x211;
const XLOADFLAGS = 0x236;
const PAYLOAD_OFFSET = 0x248;
const PAYLOAD_LENGTH = 0x24c;
const SETUP_HEADER_END = 0x250;
const LOADED_HIGH = 0x01;
const XLF_KERNEL_64 = 0x01;
/** payload_offset and payload_length arrived in 2.08 (Linux 2.6.26); older kernels are not worth supporting. */
const MIN_PROTOCOL = 0x0208;

/** Compressions a bzImage payload may use, with their magics as in the kernel's scripts/extract-vmlinux. */
type Compression = 'gzip' | 'xz' | 'zstd' | 'bzip2' | 'lzma' | 'lzo' | 'lz4';
const MAGICS: ReadonlyArray<[Compression, Buffer]> = [
  ['gzip', Buffer.from([0x1f, 0x8b, 0x08])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['bzip2', Buffer.from('BZh')],
  ['lzma', Buffer.from([0x5d, 0x00, 0x00, 0x00])],
  ['lzo', Buffer.from([0x89, 0x4c, 0x5a])],
  ['lz4', Buffer.from([0x02, 0x21, 0x4c, 0x18])],
];
const SUPPORTED: ReadonlySet<Compression> = new Set(['gzip', 'xz', 'zstd']);

const EXTRACT_HINT = "extract it with the kernel source's scripts/extract-vmlinux (extract-vmlinux BZIMAGE > vmlinux) and use the vmlinux";
const CORRUPT_HINT = 'the kernel image looks truncated or corrupt: copy it again from where it came from';

function readHead(file: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new BangerError('KERNEL_NOT_FOUND', `cannot read the kernel ${file}`, {
      hint: "check the path, and that the file is readable by banger's user",
      cause: err,
    });
  }
  try {
    const head = Buffer.alloc(HEAD_BYTES);
    return head.subarray(0, fs.readSync(fd, head, 0, HEAD_BYTES, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** Why `head` (the start of a file) is not an ELF64 x86-64 kernel, or null when it is one. */
function elfProblem(head: Buffer): string | null {
  if (head[4] === 1) return 'it is a 32-bit ELF (banger boots only x86-64 kernels)';
  if (head[4] !== 2) return `its ELF class ${head[4] ?? 'byte'} is neither 32- nor 64-bit`;
  if (head[5] !== 1) return 'it is a big-endian ELF (banger boots only x86-64 kernels)';
  if (head.length < ELF64_HEADER_BYTES) return 'its ELF header is truncated';
  const machine = head.readUInt16LE(0x12);
  if (machine !== EM_X86_64) {
    const name = ELF_MACHINES.get(machine) ?? `machine 0x${machine.toString(16)}`;
    return `it is an ELF for ${name}, not x86-64`;
  }
  if (head.readUInt16LE(0x10) === ET_REL) return 'it is an ELF object file (a kernel module?), not a kernel';
  return null;
}

function isElf(head: Buffer): boolean {
  return head.subarray(0, 4).equals(ELF_MAGIC);
}

interface SetupHeader {
  /** Where the protected-mode code starts: payload_offset counts from here. */
  protectedModeStart: number;
  payloadOffset: number;
  payloadLength: number;
}

function hasSetupMagic(head: Buffer): boolean {
  return head.length >= HEADER_MAGIC + 4 && head.toString('latin1', HEADER_MAGIC, HEADER_MAGIC + 4) === 'HdrS';
}

/** The setup header of a bzImage we can boot, or an error saying why `file` is not one. */
function readSetupHeader(file: string, head: Buffer): SetupHeader {
  const refuse = (why: string, hint = 'use an x86-64 kernel built with a current kernel tree (bzImage or vmlinux)'): BangerError =>
    new BangerError('KERNEL_NOT_FOUND', `${file} is not a usable bzImage: ${why}`, { hint });
  if (head.length < SETUP_HEADER_END) throw refuse(`the file ends at ${head.length} bytes, inside its setup header`, CORRUPT_HINT);
  const version = head.readUInt16LE(PROTOCOL_VERSION);
  const versionText = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  if (version < MIN_PROTOCOL) throw refuse(`its boot protocol ${versionText} is older than 2.08 (Linux 2.6.26)`);
  if (!((head[LOADFLAGS] ?? 0) & LOADED_HIGH)) throw refuse('it is a zImage (loaded low), not a bzImage');
  // XLF_KERNEL_64 (2.12+) is set by every 64-bit build; older headers cannot say, and the extracted ELF is checked.
  if (version >= 0x020c && !(head.readUInt16LE(XLOADFLAGS) & XLF_KERNEL_64)) throw refuse('it is a 32-bit kernel (banger boots only x86-64 kernels)');
  const sects = head[SETUP_SECTS] || 4;
  return {
    protectedModeStart: (sects + 1) * 512,
    payloadOffset: head.readUInt32LE(PAYLOAD_OFFSET),
    payloadLength: head.readUInt32LE(PAYLOAD_LENGTH),
  };
}

/** What a file that is not a kernel image looks like, for the refusal's message. */
function describeOther(head: Buffer): string {
  if (head.length === 0) return 'it is empty';
  const whole = MAGICS.find(([name, magic]) => SUPPORTED.has(name) && head.subarray(0, magic.length).equals(magic));
  if (whole) return `it is a ${whole[0]}-compressed file: decompress it first`;
  if (head.length >= 0x3c && head.toString('latin1', 0x38, 0x3c) === 'ARM\x64') return 'it is an arm64 Image (banger boots only x86-64 kernels)';
  return 'it has neither the ELF magic nor a bzImage setup header ("HdrS" at 0x202)';
}

/**
 * Whether `file` is an ELF vmlinux ('elf', which Firecracker and QEMU boot) or a bzImage ('bzimage', QEMU only).
 * Anything else (a 32-bit or non-x86 kernel, a boot protocol before 2.08, not a kernel at all) is KERNEL_NOT_FOUND.
 */
export function kernelFormat(file: string): KernelFormat {
  const head = readHead(file);
  if (isElf(head)) {
    const problem = elfProblem(head);
    if (problem) throw new BangerError('KERNEL_NOT_FOUND', `${file} is not a usable kernel: ${problem}`, { hint: 'use an x86-64 kernel (vmlinux or bzImage)' });
    return 'elf';
  }
  if (hasSetupMagic(head)) {
    readSetupHeader(file, head);
    return 'bzimage';
  }
  throw new BangerError('KERNEL_NOT_FOUND', `${file} is not a kernel image: ${describeOther(head)}`, {
    hint: 'pass the kernel itself: a vmlinux (ELF) or a bzImage such as /boot/vmlinuz-VERSION',
  });
}

interface Payload {
  compression: Compression;
  start: number;
  /** Where the payload ends (exclusive); the end of the file when only its start is known. */
  end: number;
}

function compressionAt(data: Buffer, offset: number): Compression | null {
  return MAGICS.find(([, magic]) => data.subarray(offset, offset + magic.length).equals(magic))?.[0] ?? null;
}

/** The payload exactly, from payload_offset and payload_length, when they point at a compressed stream. */
function declaredPayload(data: Buffer, header: SetupHeader): Payload | null {
  const start = header.protectedModeStart + header.payloadOffset;
  const end = start + header.payloadLength;
  if (header.payloadOffset === 0 || header.payloadLength === 0 || end > data.length) return null;
  const compression = compressionAt(data, start);
  return compression ? { compression, start, end } : null;
}

/** Every place a stream we can decompress might start, in file order: what extract-vmlinux tries. */
function scannedPayloads(data: Buffer): Payload[] {
  const found: Payload[] = [];
  for (const [compression, magic] of MAGICS) {
    if (!SUPPORTED.has(compression)) continue;
    for (let at = data.indexOf(magic); at >= 0; at = data.indexOf(magic, at + 1)) found.push({ compression, start: at, end: data.length });
  }
  return found.sort((a, b) => a.start - b.start);
}

/** A pass-through that counts bytes and computes their CRC-32, to check a gzip trailer. */
class Checksum extends Transform {
  size = 0;
  crc = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.size += chunk.length;
    this.crc = zlib.crc32(chunk, this.crc);
    done(null, chunk);
  }
}

/** Where the deflate data of the gzip member at the start of `gz` begins, past its optional fields. */
function gzipDataStart(gz: Buffer): number {
  const flags = gz[3] ?? 0xff;
  if (gz.length < 18 || flags & 0xe0) throw new Error('not a gzip header');
  let p = 10;
  if (flags & 0x04) p += 2 + gz.readUInt16LE(p);
  for (const bit of [0x08, 0x10]) {
    if (!(flags & bit)) continue;
    const nul = gz.indexOf(0, p);
    if (nul < 0) throw new Error('unterminated gzip header');
    p = nul + 1;
  }
  if (flags & 0x02) p += 2;
  if (p >= gz.length) throw new Error('truncated gzip header');
  return p;
}

/**
 * The kernel's gzip payload may be followed by other data (when scanning), which node's gunzip refuses; inflating
 * the raw deflate stream stops at its end, and the member's trailer (CRC-32 and size) is then checked by hand.
 */
async function gunzipTo(gz: Buffer, out: string): Promise<void> {
  const start = gzipDataStart(gz);
  const inflate = zlib.createInflateRaw();
  const sum = new Checksum();
  await pipeline(Readable.from([gz.subarray(start)]), inflate, sum, fs.createWriteStream(out));
  const trailer = start + inflate.bytesWritten;
  if (trailer + 8 > gz.length) throw new Error('the gzip trailer is missing');
  if (gz.readUInt32LE(trailer) !== sum.crc >>> 0 || gz.readUInt32LE(trailer + 4) !== sum.size % 2 ** 32) throw new Error('the gzip checksum does not match');
}

/** The length of the zstd frame at the start of `zs` (RFC 8878 section 3.1.1), or null when it is cut short. */
export function zstdFrameLength(zs: Buffer): number | null {
  const descriptor = zs[4];
  if (descriptor === undefined || descriptor & 0x08) return null;
  const singleSegment = (descriptor >> 5) & 1;
  let p = 5 + (singleSegment ? 0 : 1) + ([0, 1, 2, 4][descriptor & 3] ?? 0) + ([singleSegment, 2, 4, 8][descriptor >> 6] ?? 0);
  for (;;) {
    if (p + 3 > zs.length) return null;
    const block = zs.readUIntLE(p, 3);
    const type = (block >> 1) & 3;
    if (type === 3) return null;
    p += 3 + (type === 1 ? 1 : block >>> 3);
    if (block & 1) break;
  }
  if ((descriptor >> 2) & 1) p += 4;
  return p <= zs.length ? p : null;
}

async function unzstdTo(zs: Buffer, out: string): Promise<void> {
  const length = zstdFrameLength(zs);
  if (length === null) throw new Error('the zstd frame is truncated');
  await pipeline(Readable.from([zs.subarray(0, length)]), zlib.createZstdDecompress(), fs.createWriteStream(out));
}

/** xz runs as a program; --single-stream ignores what follows the stream (the kernel appends its size). */
async function unxzTo(runner: ProcessRunner, xz: Buffer, out: string): Promise<void> {
  const input = `${out}-payload.xz`;
  try {
    fs.writeFileSync(input, xz);
    const fd = fs.openSync(out, 'w');
    try {
      await runChecked(runner, 'xz', ['-dc', '--single-stream', '--', input], {
        stdoutFd: fd,
        hint: `${CORRUPT_HINT}; xz comes from apt-get install xz-utils`,
      });
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    fs.rmSync(input, { force: true });
  }
}

function readElfHead(file: string): Buffer {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(ELF64_HEADER_BYTES);
    return head.subarray(0, fs.readSync(fd, head, 0, head.length, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** Decompresses one candidate payload into `partial`; throws with a reason when it is not an x86-64 ELF kernel. */
async function decompressTo(runner: ProcessRunner, data: Buffer, payload: Payload, partial: string): Promise<void> {
  const input = data.subarray(payload.start, payload.end);
  switch (payload.compression) {
    case 'gzip':
      await gunzipTo(input, partial);
      break;
    case 'zstd':
      await unzstdTo(input, partial);
      break;
    case 'xz':
      await unxzTo(runner, input, partial);
      break;
    case 'bzip2':
    case 'lzma':
    case 'lzo':
    case 'lz4':
      throw new BangerError('KERNEL_NOT_FOUND', `the kernel's payload is ${payload.compression}-compressed, which banger cannot decompress (it reads gzip, xz and zstd)`, { hint: EXTRACT_HINT });
  }
  const head = readElfHead(partial);
  if (!isElf(head)) throw new Error(`the ${payload.compression} payload did not decompress to an ELF file`);
  const problem = elfProblem(head);
  if (problem) throw new Error(`the ${payload.compression} payload decompressed to an unusable ELF: ${problem}`);
}

/** Failures that are about this machine or this request, not about one candidate payload: never retried. */
function isFinal(err: unknown): boolean {
  return err instanceof BangerError && (err.code === 'MISSING_TOOL' || err.code === 'CANCELLED' || err.code === 'KERNEL_NOT_FOUND');
}

/**
 * Writes the ELF vmlinux inside `bzImage` to `out`, like the kernel's scripts/extract-vmlinux: the compressed
 * payload is found from the setup header (or, failing that, by scanning for compression magics), decompressed
 * (gzip and zstd in-process, xz with the xz program) and checked to be an x86-64 ELF. Written via out.partial,
 * so `out` appears only complete.
 */
export async function extractVmlinux(bzImage: string, out: string, runner: ProcessRunner = new NodeProcessRunner()): Promise<void> {
  const format = kernelFormat(bzImage);
  if (format === 'elf') {
    throw new BangerError('INVALID_ARGUMENT', `${bzImage} is already an ELF vmlinux; there is nothing to extract`, { hint: 'use the file as it is' });
  }
  let data: Buffer;
  try {
    data = fs.readFileSync(bzImage);
  } catch (err) {
    throw new BangerError('KERNEL_NOT_FOUND', `cannot read the kernel ${bzImage}`, { hint: "check that the file is readable by banger's user", cause: err });
  }
  const header = readSetupHeader(bzImage, data);
  const declared = declaredPayload(data, header);
  const partial = `${out}.partial`;
  try {
    if (declared) {
      try {
        await decompressTo(runner, data, declared, partial);
      } catch (err) {
        if (err instanceof BangerError) throw err;
        throw new BangerError('KERNEL_NOT_FOUND', `cannot extract the vmlinux from ${bzImage}: ${messageOf(err)}`, { hint: CORRUPT_HINT, cause: err });
      }
    } else {
      const candidates = scannedPayloads(data);
      let lastError: unknown = null;
      let extracted = false;
      for (const candidate of candidates) {
        try {
          await decompressTo(runner, data, candidate, partial);
          extracted = true;
          break;
        } catch (err) {
          if (isFinal(err)) throw err;
          lastError = err;
        }
      }
      if (!extracted) {
        const tried = candidates.length === 0 ? 'no gzip, xz or zstd stream in it' : `none of ${candidates.length} gzip, xz or zstd streams in it decompressed to an x86-64 ELF (last: ${messageOf(lastError)})`;
        throw new BangerError('KERNEL_NOT_FOUND', `cannot extract the vmlinux from ${bzImage}: its header does not locate the payload, and ${tried}`, { hint: EXTRACT_HINT, cause: lastError ?? undefined });
      }
    }
    fs.renameSync(partial, out);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    throw err;
  }
}
