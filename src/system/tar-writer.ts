// A small ustar writer (with pax headers for long names): enough to hand files to `tar -x` on the other end,
// with names, modes and owners chosen here rather than taken from the host.
import fs from 'node:fs';

export type TarEntry =
  | { type: 'dir'; name: string; mode: number; mtime: number }
  | { type: 'file'; name: string; mode: number; mtime: number; data: Buffer };

const BLOCK = 512;

/** Writes `entries` as a tar archive into the open file `fd` (owner root:root), ending with the two empty blocks. */
export function writeTar(fd: number, entries: Iterable<TarEntry>): void {
  for (const entry of entries) {
    const name = entry.type === 'dir' ? `${entry.name.replace(/\/+$/, '')}/` : entry.name;
    if (Buffer.byteLength(name) > 100) {
      const pax = paxRecord('path', name);
      fs.writeSync(fd, header({ name: 'PaxHeader', mode: 0o644, size: pax.length, mtime: entry.mtime, type: 'x' }));
      fs.writeSync(fd, padded(pax));
    }
    const size = entry.type === 'file' ? entry.data.length : 0;
    fs.writeSync(fd, header({ name: truncateName(name), mode: entry.mode, size, mtime: entry.mtime, type: entry.type === 'file' ? '0' : '5' }));
    if (entry.type === 'file') fs.writeSync(fd, padded(entry.data));
  }
  fs.writeSync(fd, Buffer.alloc(BLOCK * 2));
}

function header(h: { name: string; mode: number; size: number; mtime: number; type: string }): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  octal(b, 100, 8, h.mode & 0o7777);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, h.size);
  octal(b, 136, 12, Math.max(0, Math.floor(h.mtime / 1000)));
  b.write('        ', 148, 8, 'ascii');
  b.write(h.type, 156, 1, 'ascii');
  b.write('ustar\0', 257, 6, 'ascii');
  b.write('00', 263, 2, 'ascii');
  b.write('root', 265, 32, 'ascii');
  b.write('root', 297, 32, 'ascii');
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return b;
}

function octal(b: Buffer, offset: number, width: number, value: number): void {
  const text = value.toString(8).padStart(width - 1, '0');
  if (text.length > width - 1) throw new Error(`tar: ${value} does not fit in ${width - 1} octal digits`);
  b.write(`${text}\0`, offset, width, 'ascii');
}

/** A name for the ustar field when a pax header carries the real one: its last 100 bytes, cut at a character. */
function truncateName(name: string): string {
  let cut = name;
  while (Buffer.byteLength(cut) > 100) cut = cut.slice(1);
  return cut;
}

/** "LEN key=value\n", where LEN counts the whole record including its own digits. */
function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  const bodyLength = Buffer.byteLength(body);
  let length = bodyLength + 1;
  while (String(length).length + bodyLength !== length) length = String(length).length + bodyLength;
  return Buffer.from(`${length}${body}`);
}

function padded(data: Buffer): Buffer {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(BLOCK - rest)]);
}
