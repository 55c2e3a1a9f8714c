// Tar archives with names, modes and owners chosen here rather than taken from the host, for `tar -x` on the other
// end. The format itself is tar-stream's (ustar, with pax headers for long names).
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';

export type TarEntry =
  | { type: 'dir'; name: string; mode: number; mtime: number }
  | { type: 'file'; name: string; mode: number; mtime: number; data: Buffer };

/** Writes `entries` as a tar archive (every entry owned by root:root) into the open file `fd`, which stays open. */
export async function writeTar(fd: number, entries: Iterable<TarEntry>): Promise<void> {
  const pack = tarStream.pack();
  const written = pipeline(pack, fs.createWriteStream('', { fd, autoClose: false }));
  for (const entry of entries) {
    const header = { name: entry.name.replace(/\/+$/, ''), mode: entry.mode & 0o7777, mtime: new Date(Math.max(0, entry.mtime)), uid: 0, gid: 0, uname: 'root', gname: 'root' };
    if (entry.type === 'dir') pack.entry({ ...header, type: 'directory' });
    else pack.entry({ ...header, type: 'file', size: entry.data.length }, entry.data);
  }
  pack.finalize();
  await written;
}
