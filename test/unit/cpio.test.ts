import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { S_IFCHR, S_IFDIR, S_IFREG, readCpio, writeCpio, type CpioEntry } from '../../src/kernel/cpio.ts';

interface RawRecord {
  offset: number;
  name: string;
  mode: number;
  nlink: number;
  size: number;
  nameSize: number;
  dataStart: number;
}

/** An independent newc walker, so the layout is checked without trusting readCpio. */
function walk(buf: Buffer): { records: RawRecord[]; end: number } {
  const records: RawRecord[] = [];
  let off = 0;
  for (;;) {
    assert.equal(buf.toString('ascii', off, off + 6), '070701', `magic at offset ${off}`);
    const field = (i: number): number => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const nameSize = field(11);
    const size = field(6);
    const name = buf.toString('utf8', off + 110, off + 110 + nameSize - 1);
    assert.equal(buf[off + 110 + nameSize - 1], 0, `name of ${name} ends with NUL`);
    const dataStart = (off + 110 + nameSize + 3) & ~3;
    records.push({ offset: off, name, mode: field(1), nlink: field(4), size, nameSize, dataStart });
    off = (dataStart + size + 3) & ~3;
    if (name === 'TRAILER!!!') return { records, end: off };
  }
}

const entries: CpioEntry[] = [
  { path: 'bin', mode: S_IFDIR | 0o755 },
  { path: '/dev', mode: S_IFDIR | 0o755 },
  { path: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 },
  { path: 'init', mode: S_IFREG | 0o755, data: Buffer.from('#!/bin/sh\necho hi\n') },
  { path: 'bin/odd', mode: S_IFREG | 0o644, data: Buffer.from('abcde') },
  { path: 'bin/empty', mode: S_IFREG | 0o644, data: Buffer.alloc(0) },
];

describe('writeCpio / readCpio', () => {
  it('round-trips files, directories and a character device', () => {
    const back = readCpio(writeCpio(entries));
    assert.deepEqual(back.map((e) => e.path), ['bin', 'dev', 'dev/console', 'init', 'bin/odd', 'bin/empty']);
    assert.equal(back[0]!.mode, S_IFDIR | 0o755);
    const console = back[2]!;
    assert.equal(console.mode, S_IFCHR | 0o600);
    assert.equal(console.rdevMajor, 5);
    assert.equal(console.rdevMinor, 1);
    assert.equal(console.data?.length, 0);
    assert.equal(back[3]!.data?.toString(), '#!/bin/sh\necho hi\n');
    assert.equal(back[3]!.mode, S_IFREG | 0o755);
    assert.equal(back[4]!.data?.toString(), 'abcde');
    assert.equal(back[5]!.data?.length, 0);
  });

  it('strips leading slashes from paths', () => {
    const names = walk(writeCpio([{ path: '///etc', mode: S_IFDIR | 0o755 }])).records.map((r) => r.name);
    assert.deepEqual(names, ['etc', 'TRAILER!!!']);
  });

  it('starts every header and every file body on a 4-byte boundary', () => {
    // Name and data lengths chosen so every remainder mod 4 occurs.
    const varied: CpioEntry[] = [1, 2, 3, 4, 5, 6, 7].map((n) => ({
      path: 'f'.repeat(n),
      mode: S_IFREG | 0o644,
      data: Buffer.alloc(n * 3, 0x61),
    }));
    const { records } = walk(writeCpio(varied));
    for (const r of records) {
      assert.equal(r.offset % 4, 0, `header of ${r.name} at ${r.offset}`);
      assert.equal(r.dataStart % 4, 0, `data of ${r.name} at ${r.dataStart}`);
    }
    assert.deepEqual(records.slice(0, -1).map((r) => r.size), [3, 6, 9, 12, 15, 18, 21]);
  });

  it('ends with a TRAILER!!! record, zero padding, and a length that is a multiple of 512', () => {
    const buf = writeCpio(entries);
    assert.equal(buf.length % 512, 0);
    const { records, end } = walk(buf);
    const last = records.at(-1)!;
    assert.equal(last.name, 'TRAILER!!!');
    assert.equal(last.size, 0);
    assert.ok(end <= buf.length);
    assert.ok(buf.subarray(end).every((b) => b === 0), 'bytes after the trailer are zero');
  });

  it('gives directories two links and files one', () => {
    const { records } = walk(writeCpio(entries));
    assert.equal(records.find((r) => r.name === 'bin')!.nlink, 2);
    assert.equal(records.find((r) => r.name === 'init')!.nlink, 1);
  });

  it('is deterministic: the same entries give the same bytes', () => {
    assert.deepEqual(writeCpio(entries), writeCpio(entries));
  });

  it('an empty archive is just the trailer, padded to 512', () => {
    const buf = writeCpio([]);
    assert.equal(buf.length, 512);
    assert.deepEqual(readCpio(buf), []);
    assert.equal(walk(buf).records.length, 1);
  });
});
