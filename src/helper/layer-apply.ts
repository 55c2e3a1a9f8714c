// Applies one uncompressed image layer (or a rootfs tar) onto a root tree, as container runtimes do: whiteouts
// (`.wh.NAME`) remove what lower layers had, an opaque marker (`.wh..wh..opq`) empties a directory of what lower
// layers put there, and everything else is created with its type, mode (setuid and sticky bits included), owner
// and time. Runs as root in bangerd-root, into a private directory nothing else writes to, so what lstat saw
// cannot change before it is used. Nothing is written outside the root because no symlink is ever followed:
// every parent of a member is checked with lstat from the root down, and a member (or a hard link's source) whose
// path goes through a symlink is refused. Real layers never need it: they are diffs of real trees, so a merged
// /usr image writes usr/bin/x, never bin/x.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { BangerError } from '../protocol/errors.ts';
import { readTar, type TarEntry, type TarEntryType } from '../system/tar-reader.ts';

/**
 * What to do with device nodes, which are never created on the host. 'skip-under-dev' (OCI layers): those under
 * dev/ are skipped (the guest mounts devtmpfs there) and any other is refused; 'refuse': any is refused.
 */
export type DevicePolicy = 'skip-under-dev' | 'refuse';

export interface ApplyOptions {
  /** Keep the archive's numeric owners (needs root); otherwise files belong to whoever applies. */
  ownership: boolean;
  devices: DevicePolicy;
}

export interface ApplyResult {
  entries: number;
  whiteouts: number;
  /** Entries not created, as "path (type)": device nodes under dev/ and FIFOs. */
  skipped: string[];
  /**
   * Extended attributes from PAX `SCHILY.xattr.*` records, for the caller to set (Node has no setxattr): path
   * relative to the root ('' for the root itself) → name → value as raw bytes.
   */
  xattrs: Map<string, Map<string, Buffer>>;
  /** Paths this layer created or replaced: extended attributes an earlier layer gave them no longer apply. */
  written: Set<string>;
}

const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';
const HINT = 'the image is malformed or hostile; pull another one';

function refused(name: string, why: string): BangerError {
  return new BangerError('IMAGE_NOT_FOUND', `the archive's entry ${JSON.stringify(name.slice(0, 200))} ${why}; refusing it`, { hint: HINT });
}

/**
 * An archive name as components below the root. A leading "./" and empty or "." components are dropped; NUL,
 * an absolute path, any ".." and a component over 255 bytes are refused. [] is the root itself.
 */
export function memberParts(name: string, what = 'is'): string[] {
  if (name.includes('\0')) throw refused(name, `${what} a name with a NUL byte`);
  if (name.startsWith('/')) throw refused(name, `${what} an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw refused(name, `${what} a path that climbs out with ..`);
  if (parts.some((p) => Buffer.byteLength(p) > 255)) throw refused(name, `${what} a path with a name over 255 bytes`);
  return parts;
}

/** A directory entry's mode and time, set once the layer is done so a read-only directory still gets its files. */
interface DeferredDir {
  parts: string[];
  mode: number;
  mtime: Date;
  dev: number;
  ino: number;
}

/** One layer being applied. */
class LayerApplier {
  readonly result: ApplyResult = { entries: 0, whiteouts: 0, skipped: [], xattrs: new Map(), written: new Set() };
  private readonly dirs = new Map<string, DeferredDir>();
  /** Paths whose entries were skipped, with their type: a hard link to one is skipped the same way. */
  private readonly skippedTypes = new Map<string, TarEntryType>();
  /**
   * Paths already seen to be real directories. Only this applier changes the tree, and a directory stops being
   * one only by being removed, so the set is emptied on every removal that may take a directory with it.
   */
  private readonly knownDirs = new Set<string>();
  private readonly root: string;
  private readonly options: ApplyOptions;

  constructor(root: string, options: ApplyOptions) {
    this.root = path.resolve(root);
    this.options = options;
  }

  /**
   * The host directory `parts` names, each component checked with lstat from the root down: a symlink or another
   * non-directory is refused; a missing one is created (0755) when `create`, else the answer is null.
   */
  private parentDir(parts: readonly string[], name: string, create: boolean): string | null {
    let dir = this.root;
    let rel = '';
    for (const part of parts) {
      // Components have no '', '.' or '..' (memberParts), so plain joining is exact.
      dir = `${dir}/${part}`;
      rel = rel === '' ? part : `${rel}/${part}`;
      if (this.knownDirs.has(rel)) continue;
      const st = fs.lstatSync(dir, { throwIfNoEntry: false });
      if (!st) {
        if (!create) return null;
        fs.mkdirSync(dir);
        fs.chmodSync(dir, 0o755); // whatever the umask
        this.result.written.add(rel);
      } else if (st.isSymbolicLink()) {
        throw refused(name, `goes through symlink ${JSON.stringify(rel)}`);
      } else if (!st.isDirectory()) {
        throw refused(name, `goes through ${JSON.stringify(rel)}, which is not a directory`);
      }
      this.knownDirs.add(rel);
    }
    return dir;
  }

  /** Removes `target` and all below it, never following a symlink (rm removes the link itself). */
  private remove(target: string): void {
    this.knownDirs.clear();
    fs.rmSync(target, { recursive: true, force: true });
  }

  /** Runs `create`, which fails with EEXIST when something is at `target`; then removes that and runs it again. */
  private replace<T>(target: string, create: () => T): T {
    try {
      return create();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    this.remove(target);
    return create();
  }

  async apply(entry: TarEntry): Promise<void> {
    const parts = memberParts(entry.name);
    if (parts.length === 0) return this.applyRoot(entry);
    this.result.entries++;
    const base = parts.at(-1)!;
    if (base.startsWith(WHITEOUT)) return this.whiteout(entry.name, parts);
    const rel = parts.join('/');
    const type = this.effectiveType(entry, rel);
    if (type === 'fifo' || type === 'character-device' || type === 'block-device') return this.skip(entry.name, parts, type);
    const dir = this.parentDir(parts.slice(0, -1), entry.name, true)!;
    const target = path.join(dir, base);
    this.result.written.add(rel);
    this.result.xattrs.delete(rel);
    if (entry.xattrs.size > 0) this.result.xattrs.set(rel, entry.xattrs);
    const { uid, gid } = entry;
    switch (type) {
      case 'directory': {
        const st = fs.lstatSync(target, { throwIfNoEntry: false });
        if (st && !st.isDirectory()) this.remove(target);
        if (!st || !st.isDirectory()) fs.mkdirSync(target, { mode: 0o700 });
        if (this.options.ownership) fs.lchownSync(target, uid, gid);
        const made = fs.lstatSync(target);
        this.knownDirs.add(rel);
        this.dirs.delete(rel);
        this.dirs.set(rel, { parts, mode: entry.mode, mtime: entry.mtime, dev: made.dev, ino: made.ino });
        return;
      }
      case 'file': {
        const c = fs.constants;
        // O_EXCL: created here, never opened through whatever was in the way (a symlink above all).
        const fd = this.replace(target, () => fs.openSync(target, c.O_WRONLY | c.O_CREAT | c.O_EXCL | c.O_NOFOLLOW, 0o600));
        try {
          for await (const chunk of entry.body) writeAll(fd, chunk);
          if (this.options.ownership) fs.fchownSync(fd, uid, gid);
          // After chown, which clears setuid and setgid.
          fs.fchmodSync(fd, entry.mode);
          fs.futimesSync(fd, entry.mtime, entry.mtime);
        } finally {
          fs.closeSync(fd);
        }
        return;
      }
      case 'symlink': {
        if (entry.linkname === '' || entry.linkname.includes('\0')) throw refused(entry.name, 'is a symlink with an empty or NUL-bearing target');
        // Stored as it is and never followed here; an absolute target means the guest's root.
        this.replace(target, () => fs.symlinkSync(entry.linkname, target));
        if (this.options.ownership) fs.lchownSync(target, uid, gid);
        return;
      }
      case 'link': {
        const source = this.linkSource(entry);
        if (source === target) return;
        // link(2) does not follow a symlink source.
        this.replace(target, () => fs.linkSync(source, target));
        fs.lutimesSync(target, entry.mtime, entry.mtime);
        return;
      }
    }
  }

  /**
   * The type an entry is applied as (a hard link to a skipped entry is skipped the same way), after the device
   * policy allowed it.
   */
  private effectiveType(entry: TarEntry, rel: string): TarEntryType {
    let type = entry.type;
    let what = 'is a';
    const linkedType = type === 'link' ? this.skippedTypes.get(memberParts(entry.linkname, 'is a hard link to').join('/')) : undefined;
    if (linkedType) {
      type = linkedType;
      what = 'is a hard link to a';
    }
    if (type === 'character-device' || type === 'block-device') {
      const kind = type === 'character-device' ? 'character device' : 'block device';
      if (this.options.devices === 'refuse') throw refused(entry.name, `${what} ${kind}, and device nodes are not accepted here`);
      if (!rel.startsWith('dev/')) throw refused(entry.name, `${what} ${kind} outside dev/`);
    }
    return type;
  }

  /** A device node under dev/ or a FIFO: not created, but it still replaces what lower layers had there. */
  private skip(name: string, parts: string[], type: TarEntryType): void {
    const rel = parts.join('/');
    const dir = this.parentDir(parts.slice(0, -1), name, false);
    const target = dir === null ? null : path.join(dir, parts.at(-1)!);
    if (target !== null && fs.lstatSync(target, { throwIfNoEntry: false })) this.remove(target);
    this.result.written.add(rel);
    this.result.xattrs.delete(rel);
    this.skippedTypes.set(rel, type);
    this.result.skipped.push(`${rel} (${type})`);
  }

  /** A hard link's source: inside the root, reached without symlinks, present, and not a directory. */
  private linkSource(entry: TarEntry): string {
    const parts = memberParts(entry.linkname, 'is a hard link to');
    if (parts.length === 0) throw refused(entry.name, 'is a hard link to the root');
    const dir = this.parentDir(parts.slice(0, -1), entry.name, false);
    const source = dir === null ? null : path.join(dir, parts.at(-1)!);
    const st = source === null ? undefined : fs.lstatSync(source, { throwIfNoEntry: false });
    if (!st) throw refused(entry.name, `is a hard link to ${JSON.stringify(entry.linkname)}, which is not in the layers so far`);
    if (st.isDirectory()) throw refused(entry.name, `is a hard link to ${JSON.stringify(entry.linkname)}, a directory`);
    return source!;
  }

  /** `.wh.NAME` removes NAME beside it; `.wh..wh..opq` removes every child this layer has not written. */
  private whiteout(name: string, parts: string[]): void {
    this.result.whiteouts++;
    const base = parts.at(-1)!;
    const dirParts = parts.slice(0, -1);
    if (base !== OPAQUE) {
      const gone = base.slice(WHITEOUT.length);
      if (gone === '' || gone === '.' || gone === '..') throw refused(name, 'is a whiteout that names nothing');
    }
    const dir = this.parentDir(dirParts, name, false);
    if (dir === null) return; // nothing below a missing directory to remove
    if (base !== OPAQUE) {
      this.remove(path.join(dir, base.slice(WHITEOUT.length)));
      return;
    }
    for (const child of fs.readdirSync(dir)) {
      if (!this.result.written.has([...dirParts, child].join('/'))) this.remove(path.join(dir, child));
    }
  }

  /** "." : the root's owner, mode and time, and nothing else. */
  private applyRoot(entry: TarEntry): void {
    if (entry.type !== 'directory') throw refused(entry.name, 'names the root but is not a directory');
    if (this.options.ownership) fs.lchownSync(this.root, entry.uid, entry.gid);
    const st = fs.lstatSync(this.root);
    this.dirs.set('', { parts: [], mode: entry.mode, mtime: entry.mtime, dev: st.dev, ino: st.ino });
    if (entry.xattrs.size > 0) this.result.xattrs.set('', entry.xattrs);
  }

  /**
   * Directory modes and times, deepest first. A directory a later entry removed or replaced is left alone: its
   * path is walked again without following anything, and the inode must be the one this layer's entry made.
   */
  finishDirs(): void {
    const dirs = [...this.dirs.values()].sort((a, b) => b.parts.length - a.parts.length);
    for (const d of dirs) {
      let target = this.root;
      let intact = true;
      for (const part of d.parts) {
        target = path.join(target, part);
        const st = fs.lstatSync(target, { throwIfNoEntry: false });
        if (!st?.isDirectory()) {
          intact = false;
          break;
        }
      }
      const st = intact ? fs.lstatSync(target) : null;
      if (!st || st.dev !== d.dev || st.ino !== d.ino) continue;
      fs.chmodSync(target, d.mode);
      fs.utimesSync(target, d.mtime, d.mtime);
    }
  }
}

function writeAll(fd: number, chunk: Buffer): void {
  for (let done = 0; done < chunk.length;) done += fs.writeSync(fd, chunk, done, chunk.length - done);
}

/**
 * Applies the layer tar `tar` onto `root` (a directory private to the caller). Refuses, with a BangerError naming
 * the entry, anything that would write outside the root or that banger will not create.
 */
export async function applyLayer(tar: Readable | AsyncIterable<Uint8Array>, root: string, options: ApplyOptions): Promise<ApplyResult> {
  const applier = new LayerApplier(root, options);
  for await (const entry of readTar(tar)) await applier.apply(entry);
  applier.finishDirs();
  return applier.result;
}
