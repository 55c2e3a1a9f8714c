// What an imported root tree says about how to boot it and run commands in it, read before it is packed into
// ext4: whether its init is systemd, whether it has sshd, and what its config's User means in its own
// /etc/passwd and /etc/group. Symlinks are followed as the guest would see them, with the tree as `/`, and
// nothing outside the tree is read (the tree is root's private build directory, so nothing changes under us).
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import type { ImageBoot } from '../protocol/image-types.ts';

const MAX_HOPS = 40;
const MAX_ACCOUNT_FILE = 4 * 1024 * 1024;

/** The host path that `rel` means inside `root` (symlinks followed with `root` as `/`), or null when missing. */
export function resolveInTree(root: string, rel: string): string | null {
  const done: string[] = [];
  const todo = rel.split('/').filter((p) => p !== '' && p !== '.');
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(root, ...done, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(candidate);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_HOPS) return null;
      const target = fs.readlinkSync(candidate);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}

/** systemd when /sbin/init is systemd; anything else (or nothing) boots with banger's agent as PID 1. */
export function bootModeOf(root: string): ImageBoot {
  const init = resolveInTree(root, 'sbin/init');
  if (init === null || !fs.statSync(init).isFile()) return 'agent';
  const rel = path.relative(root, init);
  return path.basename(rel) === 'systemd' || rel.split(path.sep).includes('systemd') ? 'systemd' : 'agent';
}

export const SSHD_PATHS = ['usr/sbin/sshd', 'sbin/sshd', 'usr/bin/sshd'];

export function hasSshd(root: string): boolean {
  return SSHD_PATHS.some((p) => {
    const file = resolveInTree(root, p);
    return file !== null && fs.statSync(file).isFile();
  });
}

/** Lines of an account file (passwd, group) split on ':'; an absent file has none. */
function accountLines(root: string, rel: string): string[][] {
  const file = resolveInTree(root, rel);
  if (file === null) return [];
  const st = fs.statSync(file);
  if (!st.isFile() || st.size > MAX_ACCOUNT_FILE) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
}

const NUMBER = /^\d{1,10}$/;

/**
 * The uid and gid an image config's User means, as runc reads it: NAME or UID, optionally :GROUP or :GID. A
 * name is looked up in the image's /etc/passwd (its primary group unless a group is given); a uid not listed
 * there gets gid 0. A name the image does not have is an error, as it would be for `docker run`.
 */
export function resolveUser(root: string, user: string | null): { uid: number; gid: number } {
  if (user === null || user === '') return { uid: 0, gid: 0 };
  const [who = '', group] = user.split(':', 2);
  const passwd = accountLines(root, 'etc/passwd');
  const entry = NUMBER.test(who) ? passwd.find((f) => f[2] === who) : passwd.find((f) => f[0] === who);
  if (!entry && !NUMBER.test(who)) {
    throw new BangerError('IMAGE_NOT_FOUND', `the image runs as user ${JSON.stringify(who)}, which its /etc/passwd does not have`, {
      hint: 'the image is broken; pull another one or a fixed tag',
    });
  }
  const uid = Number(entry ? entry[2] : who);
  let gid = entry && NUMBER.test(entry[3] ?? '') ? Number(entry[3]) : 0;
  if (group !== undefined && group !== '') {
    if (NUMBER.test(group)) gid = Number(group);
    else {
      const g = accountLines(root, 'etc/group').find((f) => f[0] === group);
      if (!g || !NUMBER.test(g[2] ?? '')) {
        throw new BangerError('IMAGE_NOT_FOUND', `the image runs as group ${JSON.stringify(group)}, which its /etc/group does not have`, {
          hint: 'the image is broken; pull another one or a fixed tag',
        });
      }
      gid = Number(g[2]);
    }
  }
  if (!Number.isSafeInteger(uid) || uid > 0xfffffffe || gid > 0xfffffffe) throw new BangerError('IMAGE_NOT_FOUND', `the image's user ${JSON.stringify(user)} is out of range`);
  return { uid, gid };
}

/**
 * What a VM needs of a container image's tree that containers do without: the mount points the initrd and the
 * agent mount on, a sticky /tmp, and no marker that makes systemd believe it runs in a container.
 */
export function prepareForBoot(root: string): void {
  for (const leftover of ['.dockerenv', 'run/.containerenv']) fs.rmSync(path.join(root, leftover), { force: true });
  for (const dir of ['dev', 'proc', 'sys', 'run', 'etc', 'root']) ensureDir(root, dir, 0o755);
  ensureDir(root, 'tmp', 0o1777);
}

/** Creates root/rel as a directory unless something (a directory, or a symlink the guest resolves) is there. */
function ensureDir(root: string, rel: string, mode: number): void {
  const p = path.join(root, rel);
  try {
    fs.lstatSync(p);
  } catch {
    fs.mkdirSync(p);
    fs.chmodSync(p, mode);
  }
}
