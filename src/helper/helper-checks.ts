// The argument checks of bangerd-root's operations, and the file handling they share: every value from the
// daemon is matched against a narrow pattern or range before it reaches a program or the file system, and a
// refusal (HELPER_REFUSED) names the value.
import fs from 'node:fs';
import { refuse } from './refusal.ts';

export const TAP_PATTERN = /^bgt[0-9a-f]{8,12}$/;
export const VM_ID_PATTERN = /^[0-9a-f]{8,32}$/;
export const MAC_PATTERN = /^52:54:00(:[0-9a-f]{2}){3}$/;
export const CIDR_PATTERN = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
export { IPV4_PATTERN } from '../system/config.ts';
export const DIGEST_PATTERN = /^sha256:[a-f0-9]{64}$/;

export function str(value: unknown, what: string): string {
  if (typeof value !== 'string') refuse(`${what} must be a string`);
  return value;
}

export function matching(value: unknown, pattern: RegExp, what: string): string {
  const s = str(value, what);
  if (!pattern.test(s)) refuse(`${what} ${JSON.stringify(s)} is not valid`);
  return s;
}

export function int(value: unknown, min: number, max: number, what: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) refuse(`${what} must be a whole number from ${min} to ${max}`);
  return value;
}

export function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Removes what a previous boot left at `file` (a pid file, a socket); unlinking only ever removes the name. */
export function removeStale(file: string): void {
  fs.rmSync(file, { force: true });
}

/**
 * Replaces `file` with a new, empty regular file: the last boot's file is removed, and O_EXCL|O_NOFOLLOW fail
 * on anything put back in its place meanwhile, so QEMU opens the file made here rather than a symlink's target.
 */
export function createFresh(file: string, what: string): void {
  if (lstatOrNull(file)?.isFile()) fs.unlinkSync(file);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') refuse(`${what} ${file} was replaced while it was being checked`);
    throw err;
  }
  fs.closeSync(fd);
}
