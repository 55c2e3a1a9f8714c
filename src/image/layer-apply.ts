// Applies one image layer (an uncompressed tar stream) onto a root tree, as container runtimes do: whiteouts
// (`.wh.NAME`) remove what lower layers had, an opaque marker (`.wh..wh..opq`) empties a directory of what lower
// layers put there, and everything else is created with its type, mode (setuid and sticky bits included), owner
// and time. Nothing is ever written outside `root`: every path is resolved component by component, and a symlink
// met on the way is followed as if `root` were `/` (an absolute target or a `..` stops at `root`), the way
// securejoin does for runc. Runs as root in bangerd-root so owners can be kept.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import tarStream from 'tar-stream';

/** An entry's content as tar-stream hands it over: read it to the end, or resume() to skip it. */
type EntryStream = AsyncIterable<unknown> & { resume(): unknown };
import { BangerError } from '../protocol/errors.ts';

export interface ApplyOptions {
  /** Keep the archive's owners (needs root); otherwise files belong to whoever applies. */
  ownership: boolean;
}

export interface ApplyResult {
  entries: number;
  whiteouts: number;
  /** Device nodes and FIFOs, which are not created (a VM's /dev is devtmpfs). */
  skipped: string[];
  /**
   * Extended attributes from PAX headers, for the caller to set (Node has no setxattr): path → name → value. The
   * values are tar-stream's UTF-8 strings, so a binary value (a file capability) has lost bytes: nothing may set
   * them until layers are read with a reader that keeps PAX values as bytes (see the issue 9 research note).
   */
  xattrs: Map<string, Record<string, string>>;
}

const MAX_SYMLINK_HOPS = 255;
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/** The archive path as components below the root; `..`, NUL and empty names are refused. */
export function archivePath(name: string): string[] {
  if (name.includes('\0')) throw badEntry(name, 'has a NUL byte');
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) throw badEntry(name, 'climbs out with ..');
  return parts;
}

/**
 * The host path of `parts` inside `root`, following symlinks in every component but the last with `root` as
 * their `/`. The last component is not followed (it is what an entry creates or replaces).
 */
export function resolveInRoot(root: string, parts: readonly string[]): string {
  const resolved: string[] = [];
  const pending = [...parts];
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    if (part === '.' || part === '') continue;
    const candidate = path.join(root, ...resolved, part);
    if (pending.length === 0) {
      resolved.push(part);
      break;
    }
    let stat: fs.Stats | null = null;
    try {
      stat = fs.lstatSync(candidate);
    } catch {
      // Missing: created as a directory later; nothing to follow.
    }
    if (stat?.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw badEntry(parts.join('/'), 'goes through too many symlinks');
      const target = fs.readlinkSync(candidate);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...target.split('/'));
      continue;
    }
    resolved.push(part);
  }
  return path.join(root, ...resolved);
}

export async function applyLayer(tar: Readable, root: string, options: ApplyOptions): Promise<ApplyResult> {
  const result: ApplyResult = { entries: 0, whiteouts: 0, skipped: [], xattrs: new Map() };
  // Paths this layer wrote: an opaque marker empties a directory only of what lower layers left.
  const written = new Set<string>();
  // Directory modes and times go on last, so a read-only directory can still receive its files.
  const dirs: Array<{ target: string; mode: number; mtime: Date | undefined }> = [];
  const extract = tarStream.extract();
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      void applyEntry(header, stream, root, options, result, written, dirs).then(() => next(), (err: unknown) => {
        stream.resume();
        next(err as Error);
      });
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
    tar.on('error', reject);
  });
  tar.pipe(extract);
  await done;
  for (const d of dirs.reverse()) {
    fs.chmodSync(d.target, d.mode);
    if (d.mtime) fs.utimesSync(d.target, d.mtime, d.mtime);
  }
  return result;
}

async function applyEntry(
  header: tarStream.Header, stream: EntryStream, root: string, options: ApplyOptions, result: ApplyResult, written: Set<string>,
  dirs: Array<{ target: string; mode: number; mtime: Date | undefined }>,
): Promise<void> {
  const parts = archivePath(header.name);
  if (parts.length === 0) {
    stream.resume();
    return;
  }
  const base = parts.at(-1)!;
  result.entries++;
  if (base === OPAQUE || base.startsWith(WHITEOUT)) {
    stream.resume();
    result.whiteouts++;
    const dirParts = parts.slice(0, -1);
    // The directory itself, its own symlinks followed inside the root.
    const dir = path.dirname(resolveInRoot(root, [...dirParts, '_']));
    if (base === OPAQUE) {
      for (const child of safeReaddir(dir)) {
        const rel = [...dirParts, child].join('/');
        if (!written.has(rel)) fs.rmSync(path.join(dir, child), { recursive: true, force: true });
      }
    } else {
      const gone = base.slice(WHITEOUT.length);
      if (gone === '' || gone === '.' || gone === '..') throw badEntry(header.name, 'whites out no name');
      fs.rmSync(path.join(dir, gone), { recursive: true, force: true });
    }
    return;
  }
  const rel = parts.join('/');
  const target = resolveInRoot(root, parts);
  fs.mkdirSync(path.dirname(target), { recursive: true });
  written.add(rel);
  const mode = (header.mode ?? 0o644) & 0o7777;
  const pax = (header.pax ?? {}) as Record<string, string>;
  const xattrs = Object.fromEntries(Object.entries(pax).filter(([k]) => k.startsWith('SCHILY.xattr.')).map(([k, v]) => [k.slice('SCHILY.xattr.'.length), v]));
  if (Object.keys(xattrs).length > 0) result.xattrs.set(rel, xattrs);
  switch (header.type) {
    case 'directory': {
      stream.resume();
      const existing = lstatOrNull(target);
      if (existing && !existing.isDirectory()) fs.rmSync(target, { force: true });
      if (!existing || !existing.isDirectory()) fs.mkdirSync(target, { mode: 0o700 });
      if (options.ownership) fs.chownSync(target, header.uid ?? 0, header.gid ?? 0);
      dirs.push({ target, mode, mtime: header.mtime });
      return;
    }
    case 'file':
    case 'contiguous-file': {
      removeExisting(target);
      // 'wx': created here, never through a link someone put in the way.
      const fd = fs.openSync(target, 'wx', 0o600);
      try {
        for await (const chunk of stream) fs.writeSync(fd, chunk as Buffer);
        if (options.ownership) fs.fchownSync(fd, header.uid ?? 0, header.gid ?? 0);
        // After chown, which clears setuid and setgid.
        fs.fchmodSync(fd, mode);
      } finally {
        fs.closeSync(fd);
      }
      if (header.mtime) fs.utimesSync(target, header.mtime, header.mtime);
      return;
    }
    case 'symlink': {
      stream.resume();
      removeExisting(target);
      fs.symlinkSync(header.linkname ?? '', target);
      if (options.ownership) fs.lchownSync(target, header.uid ?? 0, header.gid ?? 0);
      if (header.mtime) fs.lutimesSync(target, header.mtime, header.mtime);
      return;
    }
    case 'link': {
      stream.resume();
      const source = resolveInRoot(root, archivePath(header.linkname ?? ''));
      const st = lstatOrNull(source);
      if (!st || st.isDirectory()) throw badEntry(header.name, `is a hard link to ${JSON.stringify(header.linkname)}, which is ${st ? 'a directory' : 'not in the layers so far'}`);
      removeExisting(target);
      fs.linkSync(source, target);
      return;
    }
    case 'character-device':
    case 'block-device':
    case 'fifo':
      stream.resume();
      result.skipped.push(`${rel} (${header.type})`);
      return;
    default:
      stream.resume();
      result.skipped.push(`${rel} (${header.type ?? 'unknown type'})`);
  }
}

function removeExisting(target: string): void {
  const st = lstatOrNull(target);
  if (st) fs.rmSync(target, { recursive: st.isDirectory(), force: true });
}

function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch {
    return null;
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function badEntry(name: string, why: string): BangerError {
  return new BangerError('IMAGE_NOT_FOUND', `the layer's entry ${JSON.stringify(name.slice(0, 200))} ${why}; refusing the image`, {
    hint: 'the image is malformed or hostile; pull another one',
  });
}
