import fs from 'node:fs';
import { BangerError } from '../protocol/errors.ts';
import { asOwner, type Owner } from './as-owner.ts';

/**
 * Reads QEMU's pid file without following a symlink: the file sits in a directory the owner can write to.
 * bangerd-root passes the owner, so root does not even open it with its own rights.
 */
export function readPidFile(file: string, owner?: Owner): number {
  const open = (): number => fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  let fd: number;
  try {
    fd = owner ? asOwner(owner, open) : open();
  } catch (err) {
    throw new BangerError('VMM_FAILED', `QEMU wrote no usable pid to ${file}`, { cause: err });
  }
  try {
    if (!fs.fstatSync(fd).isFile()) throw new BangerError('VMM_FAILED', `${file} is not a regular file`);
    const buf = Buffer.alloc(32);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    const pid = Number(buf.subarray(0, n).toString('utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new BangerError('VMM_FAILED', `QEMU wrote no usable pid to ${file}`);
    return pid;
  } finally {
    fs.closeSync(fd);
  }
}
