// A VM's serial console, as QEMU writes it to a file.
import fs from 'node:fs';
import type { VmLogsResult } from '../../protocol/methods.ts';

/** At most this much per read, so a client following a chatty console gets it in pieces. */
const MAX_CHUNK = 4 * 1024 * 1024;

/** Console output from `offset` on; an offset past the end (the log was recreated by a new boot) starts over. */
export function readSerialLog(file: string, offset: number): VmLogsResult {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { data: '', offset: 0 };
  }
  try {
    const size = fs.fstatSync(fd).size;
    const start = offset > size ? 0 : offset;
    const length = Math.min(size - start, MAX_CHUNK);
    const buf = Buffer.alloc(length);
    fs.readSync(fd, buf, 0, length, start);
    return { data: buf.toString('utf8'), offset: start + length };
  } finally {
    fs.closeSync(fd);
  }
}

/** The last `lines` lines of the console, for error messages. */
export function serialLogTail(file: string, lines: number): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console output)';
  }
}
