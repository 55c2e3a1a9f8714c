// Catalog bundles: a zstd-compressed tar of manifest.json and the files it names (a rootfs.ext4, a kernel, ...).
// Reading trusts nothing. Every compressed byte is counted and hashed as it arrives, and the read stops as soon as
// there are more than the catalog declared; the tar is read by our strict reader, and only regular files and
// directories that the caller's policy accepts are written, all inside the output directory. The whole-bundle
// hash is known only at the end, so the caller registers nothing until readBundle resolves and removes the
// output directory when it rejects. Big zero runs (a mostly empty ext4) are left as holes.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tarStream from 'tar-stream';
import { BangerError } from '../protocol/errors.ts';
import { readTar, type TarEntry } from '../system/tar-reader.ts';
import { HashingStream } from '../system/hashing-stream.ts';
import { badBundle, bundleLabel, openBundleSource } from './bundle-source.ts';

export type BundleMemberType = 'file' | 'directory';
/** 'accept' writes the member, 'skip' reads past it, any other string refuses the bundle with that reason. */
export type BundleMemberVerdict = 'accept' | 'skip' | (string & {});

export interface ReadBundleOptions {
  /** An https URL, a plain http URL on loopback, a file:// URL or an absolute path. */
  source: string;
  /** The whole bundle's sha256, in hex, as the catalog gives it. */
  sha256: string;
  /** The bundle's size in bytes, as the catalog gives it. */
  declaredSize: number;
  /** The most bytes any bundle may have, whatever the catalog says. */
  hardCap: number;
  /** An existing, empty directory to write into; the caller removes it when readBundle fails. */
  outDir: string;
  /** The policy for regular files and directories other than manifest.json, by normalised name. */
  members: (name: string, type: BundleMemberType) => BundleMemberVerdict;
  /** Largest manifest.json accepted; default 64 KiB. */
  maxManifestBytes?: number;
  /** How http(s) is fetched; banger's httpFetch unless a test gives its own. */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** Compressed bytes received so far, out of the declared size. */
  progress?(bytes: number, total: number): void;
}

export interface BundleContents {
  /** manifest.json parsed as JSON, unchecked: the caller validates its shape. */
  manifest: unknown;
  /** The regular files written, as names relative to outDir, in archive order (manifest.json is not written). */
  files: string[];
  /** Compressed bytes read (the declared size, since it matched). */
  bytes: number;
}

export interface WriteBundleOptions {
  /** The bundle file; written as OUT.partial and renamed when complete. */
  out: string;
  manifest: object;
  /** Files to pack: `name` inside the bundle, read from `path`. */
  files: Array<{ name: string; path: string }>;
  signal?: AbortSignal;
  /** Bytes of the files packed so far, out of their total size. */
  progress?(bytes: number, total: number): void;
}

export interface WrittenBundle {
  path: string;
  /** sha256 of the bundle file, in hex, for the catalog. */
  sha256: string;
  size: number;
}

const MANIFEST = 'manifest.json';
const DEFAULT_MAX_MANIFEST = 64 * 1024;
/** All-zero runs of this size, aligned in the file, are left as holes. */
const HOLE = 64 * 1024;
const ZEROS = Buffer.alloc(HOLE);
/** Decompressed bytes gathered before writing: 16 hole-sized blocks. */
const STAGE = 16 * HOLE;
const READ_CHUNK = 1024 * 1024;
const TYPE_WORDS: Record<TarEntry['type'], string> = {
  file: 'a regular file', directory: 'a directory', symlink: 'a symlink', link: 'a hard link',
  'character-device': 'a character device', 'block-device': 'a block device', fifo: 'a fifo',
};

/**
 * The member name with a leading `./` and trailing slashes dropped ('.' for the archive's root), or why it is
 * refused: absolute, `..`, NUL, backslash, empty or `.` components, a component over 255 bytes.
 */
export function bundleMemberName(raw: string): { name: string } | { refused: string } {
  if (raw === '') return { refused: 'it has an empty name' };
  if (raw.includes('\0')) return { refused: 'its name has a NUL byte' };
  if (raw.includes('\\')) return { refused: 'its name has a backslash' };
  if (raw.startsWith('/')) return { refused: 'its name is an absolute path' };
  const name = raw.replace(/^\.\//, '').replace(/\/+$/, '');
  if (name === '' || name === '.') return { name: '.' };
  const parts = name.split('/');
  if (parts.includes('..')) return { refused: 'its name climbs out with ..' };
  if (parts.some((p) => p === '' || p === '.')) return { refused: 'its name has an empty or . component' };
  if (parts.some((p) => Buffer.byteLength(p) > 255)) return { refused: 'its name has a component over 255 bytes' };
  return { name };
}

/** Reads the bundle at `options.source` into `options.outDir`, refusing it unless every check passes. */
export async function readBundle(options: ReadBundleOptions): Promise<BundleContents> {
  const { declaredSize, hardCap, signal } = options;
  const label = bundleLabel(options.source);
  const expected = options.sha256.toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(expected)) throw new TypeError(`readBundle: sha256 must be 64 hex digits, not ${JSON.stringify(options.sha256)}`);
  if (!Number.isSafeInteger(declaredSize) || declaredSize < 0) throw new TypeError(`readBundle: declaredSize must be a byte count, not ${declaredSize}`);
  const outDir = path.resolve(options.outDir);
  if (fs.readdirSync(outDir).length > 0) throw new Error(`readBundle: the output directory ${outDir} must be empty`);
  // A bundle over the cap cannot pass the size check at the end, so it is not worth a single byte.
  if (declaredSize > hardCap) throw badBundle(label, `the catalog says it is ${declaredSize} bytes, over the ${hardCap} banger accepts`);
  const limit = Math.min(declaredSize, hardCap);
  const hash = createHash('sha256');
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      if (bytes > limit) return done(badBundle(label, `it is longer than the ${declaredSize} bytes declared`));
      hash.update(chunk);
      options.progress?.(bytes, declaredSize);
      done(null, chunk);
    },
    // Runs before the decompressor sees the end, so a short or altered bundle is reported as such.
    flush(done) {
      if (bytes !== declaredSize) return done(badBundle(label, `it is truncated: ${bytes} of the ${declaredSize} bytes declared`));
      const got = hash.digest('hex');
      if (got !== expected) return done(badBundle(label, `its sha256 is ${got}, not the ${expected} declared`));
      done();
    },
  });
  const extractor = new Extractor(outDir, label, options.members, options.maxManifestBytes ?? DEFAULT_MAX_MANIFEST);
  try {
    signal?.throwIfAborted();
    const input = await openBundleSource({ source: options.source, declaredSize: limit, ...(signal ? { signal } : {}), ...(options.fetch ? { fetch: options.fetch } : {}) });
    // The default window limit (128 MiB) bounds the decoder's memory; frames made with zstd --long need more.
    // Big output chunks: with the default 16 KiB, per-chunk overhead made reading 4 GiB of zeros 8x slower.
    await pipeline(input, counter, zlib.createZstdDecompress({ chunkSize: 1024 * 1024 }), (plain: AsyncIterable<Buffer>) => extractor.extract(plain), { signal });
  } catch (err) {
    throw explain(err, { label, doing: 'reading', signal });
  }
  return { manifest: extractor.manifest, files: extractor.files, bytes };
}

/** Writes the members of one bundle under outDir, by the rules in this file's header. */
class Extractor {
  manifest: unknown = undefined;
  readonly files: string[] = [];
  private readonly seen = new Set<string>();
  /** Directories created here, relative to outDir ('' is outDir itself): the only ones ever gone through. */
  private readonly dirs = new Set<string>(['']);
  private readonly stage = Buffer.allocUnsafe(STAGE);
  private readonly outDir: string;
  private readonly label: string;
  private readonly policy: ReadBundleOptions['members'];
  private readonly maxManifest: number;

  constructor(outDir: string, label: string, policy: ReadBundleOptions['members'], maxManifest: number) {
    this.outDir = outDir;
    this.label = label;
    this.policy = policy;
    this.maxManifest = maxManifest;
  }

  async extract(plain: AsyncIterable<Buffer>): Promise<void> {
    for await (const entry of readTar(plain)) await this.member(entry);
    if (this.manifest === undefined) throw badBundle(this.label, `it has no ${MANIFEST}`);
  }

  private refuse(raw: string, why: string): BangerError {
    return badBundle(this.label, `member ${JSON.stringify(raw)} is refused: ${why}`);
  }

  private async member(entry: TarEntry): Promise<void> {
    const normal = bundleMemberName(entry.name);
    if ('refused' in normal) throw this.refuse(entry.name, normal.refused);
    if (entry.type !== 'file' && entry.type !== 'directory') throw this.refuse(entry.name, `it is ${TYPE_WORDS[entry.type]}; bundles hold only regular files and directories`);
    const { name } = normal;
    if (name === '.') {
      if (entry.type === 'directory') return;
      throw this.refuse(entry.name, 'a regular file cannot be the archive root');
    }
    if (this.seen.has(name)) throw this.refuse(entry.name, 'it appears twice');
    this.seen.add(name);
    if (name === MANIFEST) {
      if (entry.type !== 'file') throw this.refuse(entry.name, `${MANIFEST} must be a regular file`);
      this.manifest = await this.readManifest(entry);
      return;
    }
    const verdict = this.policy(name, entry.type);
    if (verdict === 'skip') return;
    if (verdict !== 'accept') throw this.refuse(entry.name, verdict);
    if (entry.type === 'directory') return this.makeDirs(name, entry.name);
    await this.makeDirs(path.posix.dirname(name), entry.name);
    await this.writeFile(name, entry);
    this.files.push(name);
  }

  private async readManifest(entry: TarEntry): Promise<unknown> {
    if (entry.size > this.maxManifest) throw this.refuse(entry.name, `it is ${entry.size} bytes, over the ${this.maxManifest} allowed`);
    const chunks: Buffer[] = [];
    for await (const chunk of entry.body) chunks.push(chunk);
    try {
      return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    } catch (err) {
      throw this.refuse(entry.name, `it is not JSON (${(err as Error).message})`);
    }
  }

  /** Creates `rel` and its parents (0755), going only through directories made here. */
  private async makeDirs(rel: string, raw: string): Promise<void> {
    if (rel === '.') return;
    let sofar = '';
    for (const part of rel.split('/')) {
      sofar = sofar === '' ? part : `${sofar}/${part}`;
      if (this.dirs.has(sofar)) continue;
      const full = path.join(this.outDir, sofar);
      try {
        await fs.promises.mkdir(full, { mode: 0o755 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw this.refuse(raw, `${sofar} is already a file`);
        throw err;
      }
      await fs.promises.chmod(full, 0o755);
      this.dirs.add(sofar);
    }
  }

  /** Writes the body sparsely: all-zero 64 KiB blocks are skipped, and the size is set at the end. */
  private async writeFile(name: string, entry: TarEntry): Promise<void> {
    const mode = entry.mode & 0o111 ? 0o755 : 0o644;
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
    let handle: fs.promises.FileHandle;
    try {
      handle = await fs.promises.open(path.join(this.outDir, name), flags, mode);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw this.refuse(entry.name, `${name} is already a directory`);
      throw err;
    }
    try {
      await handle.chmod(mode);
      let fill = 0;
      let position = 0;
      for await (const chunk of entry.body) {
        for (let at = 0; at < chunk.length;) {
          const copied = chunk.copy(this.stage, fill, at);
          fill += copied;
          at += copied;
          if (fill === STAGE) {
            await writeNonZero(handle, this.stage.subarray(0, fill), position);
            position += fill;
            fill = 0;
          }
        }
      }
      await writeNonZero(handle, this.stage.subarray(0, fill), position);
      await handle.truncate(entry.size);
    } finally {
      await handle.close();
    }
  }
}

/** Writes `data` at `position`, skipping its all-zero HOLE-sized blocks; runs of the rest go in one write each. */
async function writeNonZero(handle: fs.promises.FileHandle, data: Buffer, position: number): Promise<void> {
  let run = -1;
  for (let off = 0; off <= data.length; off += HOLE) {
    const block = data.subarray(off, off + HOLE);
    const zero = block.length === 0 || block.equals(ZEROS.subarray(0, block.length));
    if (!zero && run < 0) run = off;
    if (zero && run >= 0) {
      await writeAll(handle, data.subarray(run, off), position + run);
      run = -1;
    }
  }
  if (run >= 0) await writeAll(handle, data.subarray(run), position + run);
}

async function writeAll(handle: fs.promises.FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

/** Packs `options.files` and the manifest into a bundle at `options.out`; returns what the catalog needs. */
export async function writeBundle(options: WriteBundleOptions): Promise<WrittenBundle> {
  const { signal } = options;
  const names = new Set<string>([MANIFEST]);
  const files = options.files.map((file) => {
    const normal = bundleMemberName(file.name);
    if ('refused' in normal || normal.name === '.') throw new TypeError(`writeBundle: ${JSON.stringify(file.name)} cannot be a member name`);
    if (names.has(normal.name)) throw new TypeError(`writeBundle: ${JSON.stringify(file.name)} is given twice (or is ${MANIFEST})`);
    names.add(normal.name);
    const stat = fs.statSync(file.path);
    if (!stat.isFile()) throw new TypeError(`writeBundle: ${file.path} is not a regular file`);
    return { name: normal.name, path: file.path, size: stat.size, mode: stat.mode & 0o111 ? 0o755 : 0o644, mtime: stat.mtime };
  });
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const partial = `${options.out}.partial`;
  let packed = 0;
  const counter = new HashingStream();
  // One signal stops both halves: the feeding of the packer and the pipeline that compresses and writes.
  const stop = new AbortController();
  const onAbort = (): void => stop.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  const pack = tarStream.pack();
  const header = { uid: 0, gid: 0, uname: 'root', gname: 'root', type: 'file' as const };
  const feed = async (): Promise<void> => {
    pack.entry({ ...header, name: MANIFEST, mode: 0o644, mtime: new Date() }, Buffer.from(`${JSON.stringify(options.manifest, null, 2)}\n`));
    for (const file of files) {
      const entry = pack.entry({ ...header, name: file.name, size: file.size, mode: file.mode, mtime: file.mtime });
      const tally = async function* (source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const chunk of source) {
          packed += chunk.length;
          options.progress?.(packed, total);
          yield chunk;
        }
      };
      await pipeline(fs.createReadStream(file.path, { highWaterMark: READ_CHUNK }), tally, entry, { signal: stop.signal });
    }
    pack.finalize();
  };
  try {
    signal?.throwIfAborted();
    fs.rmSync(partial, { force: true });
    // Single-threaded on purpose: nbWorkers > 0 breaks streaming compression (nodejs/node#59899).
    const compress = zlib.createZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: 3, [zlib.constants.ZSTD_c_checksumFlag]: 1 } });
    const written = pipeline(pack, compress, counter, fs.createWriteStream(partial, { flags: 'wx', mode: 0o644, flush: true }), { signal: stop.signal });
    const fed = feed();
    try {
      await Promise.all([written, fed]);
    } catch (err) {
      stop.abort(err);
      await Promise.allSettled([written, fed]);
      throw err;
    }
    fs.renameSync(partial, options.out);
  } catch (err) {
    fs.rmSync(partial, { force: true });
    throw explain(err, { label: bundleLabel(options.out), doing: 'writing', signal });
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  return { path: options.out, sha256: counter.hex(), size: counter.bytes };
}

/** The error to report: CANCELLED after an abort, bad-bundle errors named by the bundle, zstd errors explained. */
function explain(err: unknown, context: { label: string; doing: 'reading' | 'writing'; signal: AbortSignal | undefined }): unknown {
  const { label, doing, signal } = context;
  if (signal?.aborted) return new BangerError('CANCELLED', `${doing} bundle ${label} was cancelled`, { cause: err });
  if (err instanceof BangerError) {
    if (err.code !== 'IMAGE_NOT_FOUND' || err.message.startsWith(`bundle ${label}`)) return err;
    return badBundle(label, err.message);
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (doing === 'reading' && code === 'ZSTD_error_frameParameter_windowTooLarge') {
    return badBundle(label, 'it needs over 128 MiB of zstd window to decompress', 'recompress without --long (zstd -3 without --long, or banger image make-bundle)');
  }
  if (doing === 'reading' && (code.startsWith('ZSTD_error') || code.startsWith('Z_'))) return badBundle(label, `it is not valid zstd: ${(err as Error).message}`);
  return err;
}
