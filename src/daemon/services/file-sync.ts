// [[file_sync]]: host files and directories copied into a new VM's home once sshd answers on its first boot, as
// a tar archive over banger's own ssh connection. Entries are checked when the VM is created, before any disk
// or tap exists; an entry that breaks a rule stops the create and is named in the error.
import fs from 'node:fs';
import path from 'node:path';
import { BangerError, messageOf } from '../../protocol/errors.ts';
import type { CallContext } from '../../protocol/jsonrpc.ts';
import type { SshTarget, VmInfo } from '../../protocol/methods.ts';
import { guestBatchCommand } from '../../protocol/ssh-command.ts';
import { entryName, isGuestReserved, type FileSyncEntry } from '../../system/file-sync-rules.ts';
import { lastLines, type ProcessRunner } from '../../system/process.ts';
import { writeTar, type TarEntry } from '../../system/tar-writer.ts';

/** More than this in one VM's [[file_sync]] is refused: it is for dotfiles, not for data. */
export const FILE_SYNC_MAX_BYTES = 64 * 1024 * 1024;

/** One entry resolved on the host: where its data really is, and whether it is a file or a directory. */
export interface ResolvedSync {
  entry: FileSyncEntry;
  index: number;
  /** The host path with every symlink resolved; inside the owner's home. */
  source: string;
  kind: 'file' | 'dir';
}

const fix = (index: number, entry: FileSyncEntry) => `fix or remove ${entryName(index, entry.host)} in config.toml`;

/**
 * Each entry checked against the host: the path exists, is readable, and (after following any symlink) lies
 * inside the owner's `home`. Throws INVALID_ARGUMENT naming the first entry that does not.
 */
export function resolveFileSync(entries: readonly FileSyncEntry[], home: string): ResolvedSync[] {
  const realHome = fs.realpathSync(home);
  return entries.map((entry, index) => {
    const name = entryName(index, entry.host);
    const written = entry.host.startsWith('~/') ? path.join(home, entry.host.slice(2)) : path.resolve(entry.host);
    if (!within(path.resolve(home), written) && !within(realHome, written)) {
      throw new BangerError('INVALID_ARGUMENT', `${name}: ${written} is not inside your home (${home})`, { hint: fix(index, entry) });
    }
    let source: string;
    try {
      // Follows a symlink at the top (or in a parent); where it leads is what must stay inside the home.
      source = fs.realpathSync(written);
    } catch (err) {
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      throw new BangerError('INVALID_ARGUMENT', `${name}: ${missing ? `${written} does not exist (or is a symlink to nothing)` : messageOf(err)}`, { hint: missing ? `create it, or ${fix(index, entry)}` : fix(index, entry) });
    }
    if (!within(realHome, source)) {
      throw new BangerError('INVALID_ARGUMENT', `${name}: ${written} leads to ${source}, outside your home`, { hint: `a symlink is followed only when it stays inside your home; ${fix(index, entry)}` });
    }
    const stat = fs.statSync(source);
    if (!stat.isFile() && !stat.isDirectory()) {
      throw new BangerError('INVALID_ARGUMENT', `${name}: ${written} is neither a file nor a directory`, { hint: fix(index, entry) });
    }
    try {
      fs.accessSync(source, fs.constants.R_OK);
    } catch {
      throw new BangerError('INVALID_ARGUMENT', `${name}: ${written} is not readable`, { hint: `check its mode, or ${fix(index, entry)}` });
    }
    return { entry, index, source, kind: stat.isFile() ? 'file' : 'dir' };
  });
}

function within(base: string, p: string): boolean {
  const rel = path.relative(base, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

export interface SyncArchive {
  entries: TarEntry[];
  files: number;
  bytes: number;
  /** What was left out, for the user: symlinks and special files met inside a directory. */
  skipped: string[];
}

/**
 * The tar entries for every resolved entry: names relative to / (root/...), files 0600 unless the entry gives a
 * mode (inside a directory, 0700 for what the host has executable), directories 0700. Symlinks inside a
 * directory are skipped, never followed.
 */
export function syncArchive(resolved: readonly ResolvedSync[], now: number): SyncArchive {
  const out: SyncArchive = { entries: [], files: 0, bytes: 0, skipped: [] };
  const addFile = (source: string, guest: string, mode: number, r: ResolvedSync): void => {
    if (isGuestReserved(guest)) {
      out.skipped.push(`${source} (it would replace banger's own key at ${guest})`);
      return;
    }
    const data = fs.readFileSync(source);
    out.bytes += data.length;
    if (out.bytes > FILE_SYNC_MAX_BYTES) {
      throw new BangerError('INVALID_ARGUMENT', `${entryName(r.index, r.entry.host)}: [[file_sync]] copies more than ${FILE_SYNC_MAX_BYTES / 1024 / 1024} MiB`, {
        hint: 'sync dotfiles and small directories only; copy bigger data in with scp or a workspace',
      });
    }
    out.files++;
    out.entries.push({ type: 'file', name: guest.slice(1), mode, mtime: now, data });
  };
  const walk = (dir: string, guestDir: string, r: ResolvedSync): void => {
    out.entries.push({ type: 'dir', name: guestDir.slice(1), mode: 0o700, mtime: now });
    for (const d of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const source = path.join(dir, d.name);
      const guest = path.posix.join(guestDir, d.name);
      if (d.isSymbolicLink()) out.skipped.push(`${source} (a symlink inside a synced directory is not followed)`);
      else if (d.isDirectory()) walk(source, guest, r);
      else if (d.isFile()) addFile(source, guest, r.entry.mode ?? ((fs.statSync(source).mode & 0o100) !== 0 ? 0o700 : 0o600), r);
      else out.skipped.push(`${source} (not a regular file)`);
    }
  };
  for (const r of resolved) {
    if (r.kind === 'file') addFile(r.source, r.entry.guest, r.entry.mode ?? 0o600, r);
    else walk(r.source, r.entry.guest, r);
  }
  return out;
}

export interface SendFileSyncOptions {
  runner: ProcessRunner;
  target: SshTarget;
  archive: SyncArchive;
  /** Where to write the archive on the host for the while (the VM's own directory). */
  scratch: string;
  signal?: AbortSignal;
}

/** Unpacks the archive at / in the guest over ssh (GNU tar; existing directories keep their owner and mode). */
export async function sendFileSync(o: SendFileSyncOptions): Promise<void> {
  const file = path.join(o.scratch, 'file-sync.tar');
  const out = fs.openSync(file, 'w', 0o600);
  try {
    await writeTar(out, o.archive.entries);
  } finally {
    fs.closeSync(out);
  }
  // Opened afresh for ssh's stdin: it must read from the start.
  const fd = fs.openSync(file, 'r');
  try {
    const { command, args } = guestBatchCommand(o.target, ['tar', '-x', '-f', '-', '-C', '/', '--no-overwrite-dir'], 5);
    const result = await o.runner.run(command, args, { stdinFd: fd, timeoutMs: 300_000, ...(o.signal ? { signal: o.signal } : {}) });
    if (result.code !== 0) {
      throw new BangerError('TOOL_FAILED', `copying the [[file_sync]] files into VM ${o.target.name} failed (${result.timedOut ? 'timed out' : `exit status ${result.code}`}): ${lastLines(result.stderr, 5)}`, {
        hint: `see the guest's console: banger vm logs ${o.target.name}; check the [[file_sync]] entries in config.toml`,
      });
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
}

export interface CopyFileSyncOptions {
  vm: Pick<VmInfo, 'name'>;
  entries: readonly FileSyncEntry[];
  home: string;
  now: number;
  runner: ProcessRunner;
  /** Whether this boot waited for sshd; without it nothing is copied (and the log says so). */
  sshReady: boolean;
  /** Why nothing can be copied to this VM (said to the caller), or null. */
  cannot?: string | null;
  target: SshTarget;
  scratch: string;
  ctx: CallContext;
  log(message: string): void;
}

/** Checks the entries again (the host may have changed since the create), then copies them in, with progress. */
export async function copyFileSync(o: CopyFileSyncOptions): Promise<void> {
  if (o.entries.length === 0) return;
  if (o.cannot) {
    o.ctx.progress({ stage: 'files', message: `[[file_sync]] skipped: ${o.cannot}` });
    o.log(`vm ${o.vm.name}: [[file_sync]] skipped: ${o.cannot}`);
    return;
  }
  if (!o.sshReady) {
    o.log(`vm ${o.vm.name}: [[file_sync]] skipped: its first boot did not wait for ssh`);
    return;
  }
  const archive = syncArchive(resolveFileSync(o.entries, o.home), o.now);
  for (const skipped of archive.skipped) o.ctx.progress({ stage: 'files', message: `skipped ${skipped}` });
  const n = o.entries.length;
  o.ctx.progress({ stage: 'files', message: `copying ${archive.files} file${archive.files === 1 ? '' : 's'} (${archive.bytes} bytes) from ${n} [[file_sync]] entr${n === 1 ? 'y' : 'ies'} into ${o.vm.name}` });
  await sendFileSync({ runner: o.runner, target: o.target, archive, scratch: o.scratch, signal: o.ctx.signal });
}
