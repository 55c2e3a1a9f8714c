// Finding a kernel's parts in a directory the user names (`kernel import NAME --from DIR`): a kernel build tree,
// an unpacked linux-image package (boot/ and lib/modules/), or a directory the user filled by hand.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import { kernelFormat, type KernelFormat } from './kernel-format.ts';

export interface KernelParts {
  /** The kernel image (its real path, inside DIR). */
  kernel: string;
  format: KernelFormat;
  initrd: string | null;
  /** The directory that holds modules.dep. */
  modulesDir: string | null;
  /** The kernel release (6.1.0-28-amd64), from the file names or the modules directory. */
  version: string | null;
}

/** Where kernels and initrds are looked for, relative to DIR. */
const IMAGE_DIRS = ['.', 'boot'];
/** Where modules/VERSION directories are looked for, relative to DIR. */
const MODULE_ROOTS = ['modules', 'lib/modules', 'usr/lib/modules'];

/** x86 kernel image names, and the release a name carries (vmlinuz-6.1.0-28-amd64). */
const KERNEL_NAME = /^(?:vmlinux|vmlinuz|bzImage)(?:-(.+))?$/;
const INITRD_NAME = /^(?:initrd\.img(?:-(.+))?|initrd|initramfs(?:-(.+))?\.img)$/;
/** Files a kernel build or package puts next to the kernel whose names would otherwise match. */
const NOT_AN_IMAGE = /\.(py|o|a|symvers|map|cmd|order|sig|asc|old|bak|dpkg-[a-z]+)$/;
const LOOKED_FOR = 'a kernel named vmlinux, vmlinux-*, vmlinuz, vmlinuz-* or bzImage (in DIR or DIR/boot)';
const LISTED = 8;

/** A release as a kernel reports it (`uname -r`), as opposed to a name the user made up (vmlinuz-custom). */
function isRelease(text: string): boolean {
  return /^\d+\.\d+/.test(text);
}

interface Found {
  /** The path as found (in DIR), for messages. */
  shown: string;
  /** Its real path, which is inside DIR. */
  real: string;
  version: string | null;
}

interface Scan {
  root: string;
  /** Symlinks that lead out of DIR: ignored, and named if nothing is found. */
  outside: string[];
}

function isInside(root: string, real: string): boolean {
  const rel = path.relative(root, real);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The real path of `rel` if it exists, is of the wanted kind, and stays inside DIR; null otherwise. */
function resolveInside(scan: Scan, rel: string, kind: 'file' | 'dir'): string | null {
  let real: string;
  try {
    real = fs.realpathSync(path.join(scan.root, rel));
  } catch {
    return null;
  }
  if (!isInside(scan.root, real)) {
    scan.outside.push(`${rel} -> ${real}`);
    return null;
  }
  let stat: fs.Stats;
  try {
    stat = fs.statSync(real);
  } catch {
    return null;
  }
  return (kind === 'file' ? stat.isFile() : stat.isDirectory()) ? real : null;
}

function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir).sort();
  } catch {
    return [];
  }
}

/** Files in DIR and DIR/boot whose names match `pattern`, one per real file (a vmlinuz link to boot/ is one). */
function findImages(scan: Scan, pattern: RegExp): Found[] {
  const byReal = new Map<string, Found>();
  for (const sub of IMAGE_DIRS) {
    const dir = resolveInside(scan, sub, 'dir');
    if (!dir) continue;
    for (const name of listDir(dir)) {
      const match = pattern.exec(name);
      if (!match || NOT_AN_IMAGE.test(name)) continue;
      const rel = path.join(path.relative(scan.root, dir), name);
      const real = resolveInside(scan, rel, 'file');
      if (!real) continue;
      const named = match.slice(1).find((v) => v !== undefined) ?? null;
      const version = named !== null && isRelease(named) ? named : null;
      const seen = byReal.get(real);
      // Of two names for one file, keep the one that says which release it is.
      if (!seen || (seen.version === null && version !== null)) byReal.set(real, { shown: rel, real, version });
    }
  }
  return [...byReal.values()];
}

/** Directories holding modules.dep: DIR/modules itself, or a VERSION directory under one of MODULE_ROOTS. */
function findModuleDirs(scan: Scan): Found[] {
  const found: Found[] = [];
  const seen = new Set<string>();
  const add = (rel: string, version: string | null): void => {
    const real = resolveInside(scan, rel, 'dir');
    if (!real || seen.has(real) || !resolveInside(scan, path.join(rel, 'modules.dep'), 'file')) return;
    seen.add(real);
    found.push({ shown: rel, real, version });
  };
  add('modules', null);
  for (const root of MODULE_ROOTS) {
    const dir = resolveInside(scan, root, 'dir');
    if (!dir) continue;
    for (const name of listDir(dir)) add(path.join(root, name), isRelease(name) ? name : null);
  }
  return found;
}

function ambiguous(dir: string, what: string, found: readonly Found[]): BangerError {
  return new BangerError('INVALID_ARGUMENT', `${dir} holds more than one ${what}: ${found.map((f) => f.shown).sort().join(', ')}`, {
    hint: `pass a directory with one kernel (and at most one initrd and one modules directory) to --from`,
  });
}

/** Of several parts, the one for `version`; the only one when there is one; an error when it cannot tell. */
function pick(dir: string, what: string, found: readonly Found[], version: string | null): Found | null {
  if (found.length <= 1) return found[0] ?? null;
  const matching = version === null ? [] : found.filter((f) => f.version === version);
  if (matching.length === 1) return matching[0] ?? null;
  throw ambiguous(dir, what, found);
}

function nothingFound(dir: string, scan: Scan): BangerError {
  const names = listDir(scan.root);
  const has = names.length === 0 ? 'it is empty' : `it has ${names.slice(0, LISTED).join(', ')}${names.length > LISTED ? `, … (${names.length} entries)` : ''}`;
  const ignored = scan.outside.length > 0 ? `; ignored symlinks that lead out of it: ${scan.outside.join(', ')}` : '';
  const arm = names.some((n) => /^Image(\.gz)?$/.test(n)) ? '; Image is an arm64 kernel, and banger boots x86-64 kernels' : '';
  return new BangerError('KERNEL_NOT_FOUND', `no kernel in ${dir}: ${has}; looked for ${LOOKED_FOR}${arm}${ignored}`, {
    hint: 'pass the directory that holds the kernel image: a kernel build tree, an unpacked linux-image package, or /boot',
  });
}

/**
 * The kernel, initrd and modules directory in `dir` (all real paths inside it: symlinks out of `dir` are
 * ignored). One kernel is required; two are INVALID_ARGUMENT unless they are one file under two names. Several
 * initrds or module directories are told apart by the kernel's release. A kernel that is not an x86-64 ELF or
 * bzImage is KERNEL_NOT_FOUND (from kernelFormat).
 */
export function findKernelParts(dir: string): KernelParts {
  let root: string;
  try {
    root = fs.realpathSync(dir);
  } catch (err) {
    throw new BangerError('INVALID_ARGUMENT', `${dir} does not exist`, { hint: 'pass the directory that holds the kernel to --from', cause: err });
  }
  if (!fs.statSync(root).isDirectory()) {
    throw new BangerError('INVALID_ARGUMENT', `${dir} is not a directory`, { hint: 'pass the directory that holds the kernel (not the kernel file itself) to --from' });
  }
  const scan: Scan = { root, outside: [] };
  const kernels = findImages(scan, KERNEL_NAME);
  if (kernels.length > 1) throw ambiguous(dir, 'kernel', kernels);
  const kernel = kernels[0];
  if (!kernel) throw nothingFound(dir, scan);
  const initrds = findImages(scan, INITRD_NAME);
  const moduleDirs = findModuleDirs(scan);
  const initrd = pick(dir, 'initrd', initrds, kernel.version);
  const modules = pick(dir, 'modules directory', moduleDirs, kernel.version);
  // Parts of different releases do not go together: modules whose vermagic differs do not load, which the guest
  // would show only at boot.
  const releases = [kernel, initrd, modules].filter((f): f is Found => f !== null && f.version !== null);
  const version = releases[0]?.version ?? null;
  const other = releases.find((f) => f.version !== version);
  if (other) {
    throw new BangerError('INVALID_ARGUMENT', `${dir} mixes kernel releases: ${releases.map((f) => `${f.shown} is ${f.version}`).join(', ')}`, {
      hint: 'pass a directory whose kernel, initrd and modules come from the same kernel build',
    });
  }
  return { kernel: kernel.real, format: kernelFormat(kernel.real), initrd: initrd?.real ?? null, modulesDir: modules?.real ?? null, version };
}
