// A writer for the "newc" cpio format the Linux kernel unpacks as an initramfs.

export interface CpioEntry {
  path: string;
  /** File type and permission bits, e.g. 0o100755 for an executable file. */
  mode: number;
  data?: Buffer;
  /** For device nodes. */
  rdevMajor?: number;
  rdevMinor?: number;
}

export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFLNK = 0o120000;

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}

/** Serialises entries in order, ending with the TRAILER!!! record. Parents must come before children. */
export function writeCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (entry: CpioEntry): void => {
    const name = Buffer.from(`${entry.path.replace(/^\/+/, '')}\0`, 'utf8');
    const data = entry.data ?? Buffer.alloc(0);
    const isDir = (entry.mode & 0o170000) === S_IFDIR;
    const header =
      '070701' +
      hex8(ino++) +
      hex8(entry.mode) +
      hex8(0) + // uid
      hex8(0) + // gid
      hex8(isDir ? 2 : 1) +
      hex8(0) + // mtime: fixed so the same inputs give the same bytes
      hex8(data.length) +
      hex8(0) + hex8(0) + // dev major/minor
      hex8(entry.rdevMajor ?? 0) +
      hex8(entry.rdevMinor ?? 0) +
      hex8(name.length) +
      hex8(0); // check
    const head = Buffer.concat([Buffer.from(header, 'ascii'), name]);
    parts.push(head, pad4(head.length), data, pad4(data.length));
  };
  for (const entry of entries) push(entry);
  push({ path: 'TRAILER!!!', mode: 0 });
  const out = Buffer.concat(parts);
  // The kernel reads archives in 512-byte blocks; pad so another archive may be appended.
  return Buffer.concat([out, Buffer.alloc((512 - (out.length % 512)) % 512)]);
}

/** Reads a newc archive back (for tests and inspection). */
export function readCpio(buf: Buffer): CpioEntry[] {
  const entries: CpioEntry[] = [];
  let off = 0;
  const align = (n: number): number => (n + 3) & ~3;
  while (off + 110 <= buf.length) {
    const magic = buf.toString('ascii', off, off + 6);
    if (magic !== '070701') break;
    const field = (i: number): number => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const rdevMajor = field(9);
    const rdevMinor = field(10);
    const nameSize = field(11);
    const name = buf.toString('utf8', off + 110, off + 110 + nameSize - 1);
    const dataStart = align(off + 110 + nameSize);
    if (name === 'TRAILER!!!') break;
    entries.push({ path: name, mode, data: buf.subarray(dataStart, dataStart + size), rdevMajor, rdevMinor });
    off = align(dataStart + size);
  }
  return entries;
}
