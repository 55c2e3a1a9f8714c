// A strict streaming reader for tar archives: ustar (with its name prefix), GNU long names and links, PAX extended
// headers and base-256 numbers. Our own rather than tar-stream's extract, which decodes PAX values as UTF-8 and
// so loses bytes of binary extended attributes (a file capability's security.capability ends in bytes such as
// ff fe). Bodies are handed over as slices of the input's chunks, never gathered into one buffer. What it cannot
// read faithfully it refuses: unknown entry types (GNU sparse files among them), bad checksums, anything cut
// short. The one leniency: an archive may end right after its last body, without the padding or the end blocks
// (umoci 0.4.7's `umoci insert` writes such layers); the caller checks a digest of the whole stream anyway.
import type { Readable } from 'node:stream';
import { BangerError } from '../protocol/errors.ts';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';

export interface TarEntry {
  /** The path as the archive spells it (PAX `path`, else a GNU long name, else ustar prefix/name). */
  name: string;
  type: TarEntryType;
  /** Permission bits with setuid, setgid and sticky; file type bits some writers add are dropped. */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes in `body`: 0 for every type but 'file'. */
  size: number;
  mtime: Date;
  /** A symlink's target or a hard link's source (an archive path); '' for the other types. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** PAX `SCHILY.xattr.NAME` records: NAME → value as raw bytes. */
  xattrs: Map<string, Buffer>;
  /** The content, as slices of the input. Read it before asking for the next entry, or it is skipped. */
  body: AsyncIterable<Buffer>;
}

export interface TarLimits {
  /** Largest PAX or GNU long-name record, and all of those before one entry together; default 1 MiB. */
  maxMetadataBytes?: number;
  /** Longest name or link name, in bytes; default 4096 (PATH_MAX). */
  maxNameBytes?: number;
}

const BLOCK = 512;
const EMPTY = Buffer.alloc(0);
// Go's archive/tar (which writes and reads most OCI layers) gives these types no body, whatever their size says.
const TYPES: Record<string, { type: TarEntryType; hasBody: boolean }> = {
  '0': { type: 'file', hasBody: true },
  '\0': { type: 'file', hasBody: true },
  '7': { type: 'file', hasBody: true },
  '1': { type: 'link', hasBody: false },
  '2': { type: 'symlink', hasBody: false },
  '3': { type: 'character-device', hasBody: false },
  '4': { type: 'block-device', hasBody: false },
  '5': { type: 'directory', hasBody: false },
  '6': { type: 'fifo', hasBody: false },
};
const TYPE_NAMES: Record<string, string> = { S: 'a GNU sparse file', D: 'a GNU dump directory', M: 'a multi-volume continuation', V: 'a volume label' };
// fatal: a name that is not UTF-8 is refused rather than silently changed; ignoreBOM: a leading U+FEFF is kept.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(why: string): BangerError {
  return new BangerError('IMAGE_NOT_FOUND', `the tar archive is malformed: ${why}`, {
    hint: 'the archive is damaged, cut short or hostile; download it again or use another image',
  });
}

/** The input as chunks: slices of what arrives, copied only when a header or record spans two chunks. */
class ChunkReader {
  private chunk: Buffer = EMPTY;
  private ended = false;
  /** Bytes handed out so far: where the next one is in the input. */
  position = 0;
  private readonly source: AsyncIterator<Uint8Array>;

  constructor(source: AsyncIterator<Uint8Array>) {
    this.source = source;
  }

  /** Up to `max` bytes without copying; empty only at the end of the input. */
  async take(max: number): Promise<Buffer> {
    while (this.chunk.length === 0 && !this.ended) {
      const next = await this.source.next();
      if (next.done) this.ended = true;
      else this.chunk = toBuffer(next.value);
    }
    const out = this.chunk.subarray(0, Math.min(max, this.chunk.length));
    this.chunk = this.chunk.subarray(out.length);
    this.position += out.length;
    return out;
  }

  /** Exactly `n` bytes, or fewer when the input ends first. */
  async read(n: number): Promise<Buffer> {
    const first = await this.take(n);
    if (first.length === n || first.length === 0) return first;
    const out = Buffer.allocUnsafe(n);
    first.copy(out);
    let have = first.length;
    while (have < n) {
      const more = await this.take(n - have);
      if (more.length === 0) return out.subarray(0, have);
      more.copy(out, have);
      have += more.length;
    }
    return out;
  }

  /** Skips up to `n` bytes; returns how many there were. */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      const got = (await this.take(n - done)).length;
      if (got === 0) break;
      done += got;
    }
    return done;
  }
}

function toBuffer(value: Uint8Array): Buffer {
  if (Buffer.isBuffer(value)) return value;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new TypeError('readTar needs a stream of bytes, not of strings or objects');
}

/** A numeric field: octal text, or GNU base-256 (big-endian two's complement after the flag bit). */
function numberField(h: Buffer, offset: number, length: number, field: string): number {
  const first = h[offset]!;
  if (first & 0x80) {
    const invert = first & 0x40 ? 0xff : 0;
    let value = 0;
    for (let i = 0; i < length; i++) {
      let byte = h[offset + i]! ^ invert;
      if (i === 0) byte &= 0x7f;
      value = value * 256 + byte;
      if (!Number.isSafeInteger(value)) throw malformed(`the ${field} field is too large`);
    }
    return invert ? -value - 1 : value;
  }
  const text = h.toString('latin1', offset, offset + length).replace(/^[ \0]+|[ \0]+$/g, '');
  if (!/^[0-7]*$/.test(text)) throw malformed(`the ${field} field is not a number: ${JSON.stringify(text)}`);
  return text === '' ? 0 : parseInt(text, 8);
}

function unsignedField(h: Buffer, offset: number, length: number, field: string): number {
  const value = numberField(h, offset, length, field);
  if (value < 0) throw malformed(`the ${field} field is negative`);
  return value;
}

/** Bytes up to the first NUL. */
function cString(bytes: Buffer): Buffer {
  const nul = bytes.indexOf(0);
  return nul < 0 ? bytes : bytes.subarray(0, nul);
}

function text(bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes);
  } catch {
    throw malformed(`${what} is not valid UTF-8`);
  }
}

/** 'zero' for an all-zero block; otherwise whether the checksum (unsigned, or signed as old tars wrote) agrees. */
function checkHeader(h: Buffer): 'zero' | 'ok' | 'bad' {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b < 0x80 ? b : b - 0x100;
  }
  if (unsigned === 8 * 0x20 && h.subarray(148, 156).every((b) => b === 0)) return 'zero';
  let stored: number;
  try {
    stored = numberField(h, 148, 8, 'checksum');
  } catch {
    return 'bad';
  }
  return stored === unsigned || stored === signed ? 'ok' : 'bad';
}

/** PAX records, `LEN key=value\n`, with values kept as bytes. */
function parsePax(data: Buffer, into: Map<string, Buffer>): void {
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const digits = space < 0 ? '' : data.toString('latin1', at, space);
    const length = /^[0-9]{1,8}$/.test(digits) ? Number(digits) : NaN;
    const end = at + length;
    if (!(length > space - at + 1) || end > data.length || data[end - 1] !== 0x0a) throw malformed('a PAX record has a bad length');
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw malformed('a PAX record has no key');
    into.set(text(record.subarray(0, eq), 'a PAX key'), Buffer.from(record.subarray(eq + 1)));
    at = end;
  }
}

function paxNumber(value: Buffer, key: string, pattern: RegExp): number {
  const s = value.toString('latin1');
  const n = Number(s);
  if (!pattern.test(s) || !Number.isFinite(n) || (Number.isInteger(n) && !Number.isSafeInteger(n))) throw malformed(`PAX ${key} is not a number: ${JSON.stringify(s.slice(0, 40))}`);
  return n;
}

/** What extended headers said about the next entry. */
interface Pending {
  pax: Map<string, Buffer>;
  longName: Buffer | null;
  longLink: Buffer | null;
  bytes: number;
}

function nothingPending(): Pending {
  return { pax: new Map(), longName: null, longLink: null, bytes: 0 };
}

/**
 * The entries of the tar archive `input`, in order. Each entry's `body` must be read before the next entry is
 * asked for, or what is left of it is skipped; a body read after that throws. Ends after the end-of-archive
 * blocks, having read (and dropped) whatever follows them, so a hash of the input sees all of it.
 */
export async function* readTar(input: Readable | AsyncIterable<Uint8Array>, limits: TarLimits = {}): AsyncGenerator<TarEntry, void, undefined> {
  const maxMetadata = limits.maxMetadataBytes ?? 1024 * 1024;
  const maxName = limits.maxNameBytes ?? 4096;
  const source = (input as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  const reader = new ChunkReader(source);
  let finished = false;
  // The body being read: its bytes left, and which entry it belongs to (a stale body must not read on).
  let left = 0;
  let current = 0;
  async function* body(serial: number, name: string): AsyncGenerator<Buffer, void, undefined> {
    for (;;) {
      if (serial !== current) throw new Error(`the body of tar entry ${name} was read after the next entry was asked for`);
      if (left === 0) return;
      const chunk = await reader.take(left);
      if (chunk.length === 0) throw malformed(`the body of ${JSON.stringify(name)} is cut short`);
      left -= chunk.length;
      yield chunk;
    }
  }
  try {
    let pending = nothingPending();
    for (;;) {
      const at = `at byte ${reader.position}`;
      const h = await reader.read(BLOCK);
      if (h.length === 0) {
        if (pending.bytes > 0) throw malformed('it ends after an extended header, with no entry for it');
        break;
      }
      if (h.length < BLOCK) throw malformed(`the header ${at} is cut short`);
      const check = checkHeader(h);
      if (check === 'zero') {
        if (pending.bytes > 0) throw malformed('it ends after an extended header, with no entry for it');
        const second = await reader.read(BLOCK);
        if (second.some((b) => b !== 0)) throw malformed(`the zero block ${at} is followed by more entries`);
        break;
      }
      if (check === 'bad') throw malformed(`the checksum of the header ${at} does not match`);
      const flag = String.fromCharCode(h[156]!);
      const headerSize = unsignedField(h, 124, 12, 'size');
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        pending.bytes += headerSize;
        if (pending.bytes > maxMetadata) throw malformed(`extended headers of over ${maxMetadata} bytes`);
        const data = await reader.read(headerSize);
        const pad = (BLOCK - (headerSize % BLOCK)) % BLOCK;
        if (data.length < headerSize || (await reader.skip(pad)) < pad) throw malformed('an extended header is cut short');
        // A global header ('g') is ignored, as containerd and docker ignore it.
        if (flag === 'x') parsePax(data, pending.pax);
        else if (flag === 'L') pending.longName = cString(data);
        else if (flag === 'K') pending.longLink = cString(data);
        continue;
      }
      const known = TYPES[flag];
      if (!known) throw malformed(`the entry ${at} is ${TYPE_NAMES[flag] ?? `of unknown type ${JSON.stringify(flag)}`}, which banger does not read`);
      const described = describe(h, flag, headerSize, pending, maxName);
      pending = nothingPending();
      const serial = ++current;
      left = described.size;
      const entry: TarEntry = { ...described, body: body(serial, described.name) };
      yield entry;
      current++;
      if (left > 0 && (await reader.skip(left)) < left) throw malformed(`the body of ${JSON.stringify(entry.name)} is cut short`);
      left = 0;
      const pad = (BLOCK - (entry.size % BLOCK)) % BLOCK;
      const padded = await reader.skip(pad);
      // No padding at all is the end of an archive that has no end blocks; some of it is a cut.
      if (padded !== 0 && padded < pad) throw malformed(`the padding after ${JSON.stringify(entry.name)} is cut short`);
    }
    while ((await reader.take(Infinity)).length > 0) { /* after the end: read so the caller's hashes see it */ }
    finished = true;
  } finally {
    if (!finished) await source.return?.();
  }
}

/** The entry a header describes, with what extended headers said applied. */
function describe(h: Buffer, flag: string, headerSize: number, pending: Pending, maxName: number): Omit<TarEntry, 'body'> {
  const known = TYPES[flag]!;
  const { pax } = pending;
  for (const key of pax.keys()) {
    if (key.startsWith('GNU.sparse.')) throw malformed('an entry is a GNU sparse file, which banger does not read');
  }
  let nameBytes = cString(h.subarray(0, 100));
  // POSIX ustar ("ustar\0") puts the start of a long name in the prefix; GNU's "ustar  " uses that space otherwise.
  if (h.toString('latin1', 257, 263) === 'ustar\0') {
    const prefix = cString(h.subarray(345, 500));
    if (prefix.length > 0) nameBytes = Buffer.concat([prefix, Buffer.from('/'), nameBytes]);
  }
  if (pending.longName) nameBytes = pending.longName;
  const paxPath = pax.get('path');
  if (paxPath && paxPath.length > 0) nameBytes = paxPath;
  let linkBytes = pending.longLink ?? cString(h.subarray(157, 257));
  const paxLink = pax.get('linkpath');
  if (paxLink && paxLink.length > 0) linkBytes = paxLink;
  if (nameBytes.length > maxName || linkBytes.length > maxName) throw malformed(`a name is over ${maxName} bytes`);
  const name = text(nameBytes, 'an entry name');
  // Pre-POSIX tars (type NUL) mark a directory only by a trailing slash; like Go's archive/tar, it has no body.
  const type = flag === '\0' && name.endsWith('/') ? 'directory' : known.type;
  const hasLink = type === 'symlink' || type === 'link';
  const isDevice = type === 'character-device' || type === 'block-device';
  const override = (key: string, pattern: RegExp, fallback: () => number): number => {
    const value = pax.get(key);
    return value && value.length > 0 ? paxNumber(value, key, pattern) : fallback();
  };
  const size = override('size', /^[0-9]+$/, () => headerSize);
  const xattrs = new Map<string, Buffer>();
  for (const [key, value] of pax) {
    if (key.startsWith('SCHILY.xattr.') && key.length > 'SCHILY.xattr.'.length) xattrs.set(key.slice('SCHILY.xattr.'.length), value);
  }
  return {
    name,
    type,
    mode: numberField(h, 100, 8, 'mode') & 0o7777,
    uid: override('uid', /^[0-9]+$/, () => unsignedField(h, 108, 8, 'uid')),
    gid: override('gid', /^[0-9]+$/, () => unsignedField(h, 116, 8, 'gid')),
    size: known.hasBody && type === 'file' ? size : 0,
    mtime: new Date(override('mtime', /^-?[0-9]+(\.[0-9]+)?$/, () => numberField(h, 136, 12, 'mtime')) * 1000),
    linkname: hasLink ? text(linkBytes, 'a link name') : '',
    devmajor: isDevice ? unsignedField(h, 329, 8, 'devmajor') : 0,
    devminor: isDevice ? unsignedField(h, 337, 8, 'devminor') : 0,
    xattrs,
  };
}
