// [[file_sync]] entries of config.toml as written: which host path, where in the guest's home, with what mode.
// Checked when the config is loaded, before any VM exists; what needs the file system (does the host path
// exist, where does a symlink lead) is checked at create time by daemon/services/file-sync.ts.
import path from 'node:path';

export interface FileSyncEntry {
  /** As written: "~/..." (in the owner's home) or an absolute path (which must lie inside it). */
  host: string;
  /** Absolute, normalised, always below /root (the guest user's home). */
  guest: string;
  /** Permission bits for the files copied; null for the default (0600, 0700 for executables inside a directory). */
  mode: number | null;
}

/** The guest user's home. */
export const GUEST_HOME = '/root';

/** banger's own key: a copy over it would lock banger out of the guest. */
const GUEST_RESERVED = new Set([path.posix.join(GUEST_HOME, '.ssh/authorized_keys')]);

export function isGuestReserved(guestPath: string): boolean {
  return GUEST_RESERVED.has(guestPath);
}

/** How an entry is named in messages: its position (from 1) and its host path. */
export function entryName(index: number, host: unknown): string {
  return `[[file_sync]] entry ${index + 1}${typeof host === 'string' ? ` (host = ${JSON.stringify(host)})` : ''}`;
}

export type EntryCheck = { entry: FileSyncEntry } | { message: string; hint: string };

const KEYS = ['host', 'guest', 'mode'];

/** One entry of config.toml's [[file_sync]], checked without touching the file system. */
export function parseFileSyncEntry(raw: unknown, index: number): EntryCheck {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { message: `${entryName(index, undefined)} must be a table`, hint: 'write each entry as [[file_sync]] with host = "~/..." and guest = "~/..." below it' };
  }
  const o = raw as Record<string, unknown>;
  const name = entryName(index, o.host);
  const unknown = Object.keys(o).filter((k) => !KEYS.includes(k));
  if (unknown.length > 0) return { message: `${name}: unknown key ${unknown.join(', ')}`, hint: `known keys in [[file_sync]]: ${KEYS.join(', ')}` };
  if (typeof o.host !== 'string' || o.host === '') return { message: `${name}: host must be a path in quotes`, hint: 'e.g. host = "~/.gitconfig"' };
  if (typeof o.guest !== 'string' || o.guest === '') return { message: `${name}: guest must be a path in quotes`, hint: 'e.g. guest = "~/.gitconfig"' };
  const host = o.host;
  if (!host.startsWith('~/') && !path.isAbsolute(host)) {
    return { message: `${name}: host must start with ~/ or be an absolute path inside your home`, hint: 'e.g. host = "~/.gitconfig"' };
  }
  if (host.startsWith('~/') && !inside(path.posix.normalize(host.slice(2)))) {
    return { message: `${name}: host must name something inside your home, not your home or above it`, hint: 'e.g. host = "~/.gitconfig"; ".." may not leave your home' };
  }
  const guest = guestPath(o.guest);
  if (guest === null) {
    return { message: `${name}: guest = ${JSON.stringify(o.guest)} must be below the guest's home, written ~/... or /root/...`, hint: 'e.g. guest = "~/.gitconfig"; ".." may not leave the home' };
  }
  if (isGuestReserved(guest)) {
    return { message: `${name}: guest ${guest} is where banger's own ssh key goes`, hint: 'copy your keys elsewhere, e.g. guest = "~/.ssh/id_ed25519"' };
  }
  let mode: number | null = null;
  if (o.mode !== undefined) {
    if (typeof o.mode !== 'string' || !/^0?[0-7]{3}$/.test(o.mode)) {
      return { message: `${name}: mode must be octal permission bits in quotes (got ${JSON.stringify(o.mode)})`, hint: 'e.g. mode = "0600", or leave it out for 0600' };
    }
    mode = Number.parseInt(o.mode, 8);
    if ((mode & 0o400) === 0) return { message: `${name}: mode ${o.mode} leaves the files unreadable to their owner`, hint: 'e.g. mode = "0600"' };
  }
  return { entry: { host, guest, mode } };
}

/** "~/x" or "/root/x" as "/root/x", normalised; null when it is the home itself or leaves it. */
function guestPath(written: string): string | null {
  let rest: string;
  if (written.startsWith('~/')) rest = written.slice(2);
  else if (written.startsWith(`${GUEST_HOME}/`)) rest = written.slice(GUEST_HOME.length + 1);
  else return null;
  const normal = path.posix.normalize(rest);
  return inside(normal) ? path.posix.join(GUEST_HOME, normal).replace(/\/+$/, '') : null;
}

/** Whether a normalised relative path stays below its base (not the base itself, not above it). */
function inside(relative: string): boolean {
  return relative !== '.' && relative !== '' && relative !== '..' && !relative.startsWith('../') && !path.posix.isAbsolute(relative);
}
