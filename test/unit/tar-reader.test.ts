// The tar reader against archives written by hand (GNU long names, base-256 numbers, binary PAX values, damage)
// and by tar-stream's pack, which src/system/tar-writer.ts uses.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import tarStream from 'tar-stream';
import { readTar, type TarEntry } from '../../src/system/tar-reader.ts';
import { fails } from '../fakes/expect-error.ts';

interface HeaderFields {
  name: string;
  flag?: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  prefix?: string;
  /** Replaces the uid field's bytes (base-256 numbers). */
  rawUid?: Buffer;
  rawSize?: Buffer;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar header block, with a correct checksum. */
function header(f: HeaderFields): Buffer {
  const h = Buffer.alloc(512);
  h.write(f.name, 0, 100, 'utf8');
  h.write(octal(f.mode ?? 0o644, 8), 100, 'latin1');
  if (f.rawUid) f.rawUid.copy(h, 108);
  else h.write(octal(f.uid ?? 0, 8), 108, 'latin1');
  h.write(octal(f.gid ?? 0, 8), 116, 'latin1');
  if (f.rawSize) f.rawSize.copy(h, 124);
  else h.write(octal(f.size ?? 0, 12), 124, 'latin1');
  h.write(octal(f.mtime ?? 1_700_000_000, 12), 136, 'latin1');
  h.write(f.flag ?? '0', 156, 'latin1');
  h.write(f.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\x0000', 257, 'latin1');
  h.write(f.prefix ?? '', 345, 155, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function padded(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

/** A file entry: header and padded body. */
function file(name: string, body: string | Buffer, extra: Partial<HeaderFields> = {}): Buffer {
  const data = Buffer.from(body);
  return Buffer.concat([header({ name, size: data.length, ...extra }), padded(data)]);
}

/** A PAX record `LEN key=value\n`, LEN counting itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len++;
  return Buffer.concat([Buffer.from(String(len)), rest]);
}

function extended(flag: string, data: Buffer): Buffer {
  return Buffer.concat([header({ name: '././@LongLink', flag, size: data.length }), padded(data)]);
}

const END = Buffer.alloc(1024);

/** Feeds `data` in chunks of `size` bytes (chunk boundaries in headers and bodies). */
async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

type Read = Omit<TarEntry, 'body'> & { content: string };

async function read(data: Buffer, chunk = 1 << 16): Promise<Read[]> {
  const out: Read[] = [];
  for await (const { body, ...entry } of readTar(chunked(data, chunk))) {
    const parts: Buffer[] = [];
    for await (const c of body) parts.push(c);
    out.push({ ...entry, content: Buffer.concat(parts).toString('latin1') });
  }
  return out;
}

describe('readTar', () => {
  it('joins a ustar prefix and name', async () => {
    const [e] = await read(Buffer.concat([file('c.txt', 'hi', { prefix: 'a/b' }), END]));
    assert.equal(e!.name, 'a/b/c.txt');
    assert.equal(e!.content, 'hi');
  });

  it('reads GNU long names and long link names', async () => {
    const long = `${'d'.repeat(150)}/${'n'.repeat(200)}`;
    const target = `/${'t'.repeat(300)}`;
    const data = Buffer.concat([
      extended('L', Buffer.from(`${long}\0`)),
      file('short', 'body'),
      extended('L', Buffer.from(`${long}-link\0`)),
      extended('K', Buffer.from(`${target}\0`)),
      header({ name: 'x', flag: '2', linkname: 'ignored' }),
      file('plain', ''),
      END,
    ]);
    const [a, b, c] = await read(data);
    assert.deepEqual([a!.name, a!.content], [long, 'body']);
    assert.deepEqual([b!.name, b!.type, b!.linkname], [`${long}-link`, 'symlink', target]);
    assert.equal(c!.name, 'plain', 'a long name applies to one entry only');
  });

  it('takes path, linkpath, size, uid, gid and mtime from PAX headers', async () => {
    const pax = Buffer.concat([
      paxRecord('path', Buffer.from('ü/long/path')),
      paxRecord('size', Buffer.from('5')),
      paxRecord('uid', Buffer.from('3000000')),
      paxRecord('gid', Buffer.from('42')),
      paxRecord('mtime', Buffer.from('1700000000.5')),
    ]);
    const link = paxRecord('linkpath', Buffer.from('target with spaces'));
    const data = Buffer.concat([
      extended('x', pax), header({ name: 'short', size: 0 }), padded(Buffer.from('12345')),
      extended('x', link), header({ name: 'l', flag: '1', linkname: 'other' }),
      END,
    ]);
    const [f, l] = await read(data);
    assert.deepEqual([f!.name, f!.size, f!.content, f!.uid, f!.gid, f!.mtime.getTime()], ['ü/long/path', 5, '12345', 3000000, 42, 1_700_000_000_500]);
    assert.deepEqual([l!.name, l!.type, l!.linkname, l!.size], ['l', 'link', 'target with spaces', 0]);
  });

  it('keeps a binary xattr value byte for byte', async () => {
    const value = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), Buffer.from([0xff, 0xfe, 0x0a, 0x00])]);
    const pax = Buffer.concat([paxRecord('SCHILY.xattr.security.capability', value), paxRecord('SCHILY.xattr.user.empty', Buffer.alloc(0))]);
    const [e] = await read(Buffer.concat([extended('x', pax), file('usr/bin/ping', 'p'), END]), 100);
    assert.deepEqual([...e!.xattrs.keys()], ['security.capability', 'user.empty']);
    assert.ok(e!.xattrs.get('security.capability')!.equals(value));
    assert.equal(e!.xattrs.get('user.empty')!.length, 0);
  });

  it('reads base-256 numbers', async () => {
    const uid = Buffer.from([0x80, 0, 0, 0, 0, 0x01, 0x31, 0x2d]); // 78125
    const size = Buffer.alloc(12);
    size[0] = 0x80;
    size[11] = 3;
    const data = Buffer.concat([header({ name: 'f', rawUid: uid, rawSize: size }), padded(Buffer.from('abc')), END]);
    const [e] = await read(data);
    assert.deepEqual([e!.uid, e!.size, e!.content], [78125, 3, 'abc']);
    const negative = Buffer.alloc(8, 0xff);
    await assert.rejects(read(Buffer.concat([header({ name: 'f', rawUid: negative }), END])), fails('IMAGE_NOT_FOUND', /uid field is negative/));
  });

  it('accepts an archive with no end blocks, and one that ends right after its last body (umoci insert)', async () => {
    assert.equal((await read(file('a', 'x'))).length, 1);
    const cut = Buffer.concat([header({ name: '.wh.gone' }), header({ name: 'b', size: 4 }), Buffer.from('four')]);
    const entries = await read(cut, 7);
    assert.deepEqual(entries.map((e) => [e.name, e.content]), [['.wh.gone', ''], ['b', 'four']]);
  });

  it('refuses a body, padding or header cut short', async () => {
    await assert.rejects(read(Buffer.concat([header({ name: 'b', size: 10 }), Buffer.from('short')])), fails('IMAGE_NOT_FOUND', /body of "b" is cut short/));
    await assert.rejects(read(Buffer.concat([header({ name: 'b', size: 4 }), Buffer.from('four'), Buffer.alloc(20)])), fails('IMAGE_NOT_FOUND', /padding/));
    await assert.rejects(read(Buffer.concat([file('a', 'x'), header({ name: 'b' }).subarray(0, 300)])), fails('IMAGE_NOT_FOUND', /the header at byte 1024 is cut short/));
    const unread = readTar(chunked(Buffer.concat([header({ name: 'b', size: 4000 }), Buffer.alloc(1000)]), 512));
    await unread.next();
    await assert.rejects(unread.next(), fails('IMAGE_NOT_FOUND', /cut short/), 'skipping an unread body finds the cut too');
    await assert.rejects(read(extended('x', paxRecord('path', Buffer.from('p')))), fails('IMAGE_NOT_FOUND', /no entry for it/));
  });

  it('refuses a bad checksum, unknown types, GNU sparse files and non-UTF-8 names', async () => {
    const bad = file('a', 'x');
    bad[0] = 'b'.charCodeAt(0);
    await assert.rejects(read(bad), fails('IMAGE_NOT_FOUND', /checksum of the header at byte 0 does not match/, { hint: true }));
    await assert.rejects(read(Buffer.concat([header({ name: 'sparse', flag: 'S' }), END])), fails('IMAGE_NOT_FOUND', /entry at byte 0 is a GNU sparse file/));
    await assert.rejects(read(Buffer.concat([header({ name: 'q', flag: 'Q' }), END])), fails('IMAGE_NOT_FOUND', /unknown type "Q"/));
    const sparsePax = extended('x', paxRecord('GNU.sparse.major', Buffer.from('1')));
    await assert.rejects(read(Buffer.concat([sparsePax, file('s', ''), END])), fails('IMAGE_NOT_FOUND', /sparse/));
    const latin1 = header({ name: 'x' });
    const named = Buffer.concat([extended('x', paxRecord('path', Buffer.from([0x63, 0x61, 0x66, 0xe9]))), latin1, END]);
    await assert.rejects(read(named), fails('IMAGE_NOT_FOUND', /not valid UTF-8/));
    await assert.rejects(read(Buffer.concat([file('a', 'x'), Buffer.alloc(512), file('b', 'y')])), fails('IMAGE_NOT_FOUND', /zero block at byte 1024 is followed/));
  });

  it('caps extended headers and names', async () => {
    const big = extended('x', paxRecord('comment', Buffer.alloc(1024 * 1024, 0x61)));
    await assert.rejects(read(Buffer.concat([big, file('a', ''), END])), fails('IMAGE_NOT_FOUND', /extended headers of over 1048576 bytes/));
    const long = extended('L', Buffer.from(`${'a/'.repeat(2100)}\0`));
    await assert.rejects(read(Buffer.concat([long, file('a', ''), END])), fails('IMAGE_NOT_FOUND', /over 4096 bytes/));
  });

  it('skips bodies left unread, refuses a stale body, and reads the input to its end', async () => {
    let drained = false;
    async function* input(): AsyncGenerator<Buffer> {
      yield Buffer.concat([file('a', 'x'.repeat(3000)), file('b', 'unread'), file('c', 'sea'), END, Buffer.alloc(8192)]);
      drained = true;
    }
    const names: string[] = [];
    let stale: AsyncIterable<Buffer> | null = null;
    for await (const e of readTar(input())) {
      names.push(e.name);
      if (e.name === 'a') {
        for await (const c of e.body) {
          assert.equal(c.length, 3000);
          break;
        }
      } else if (e.name === 'b') {
        stale = e.body;
      } else {
        await assert.rejects((async () => {
          for await (const _ of stale!) { /* nothing */ }
        })(), /read after the next entry/);
        const parts: Buffer[] = [];
        for await (const c of e.body) parts.push(c);
        assert.equal(Buffer.concat(parts).toString(), 'sea');
      }
    }
    assert.deepEqual(names, ['a', 'b', 'c']);
    assert.ok(drained);
  });

  it('reads back what tar-stream packs, in any chunking', async () => {
    const pack = tarStream.pack();
    const big = Buffer.alloc(300_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    const mtime = new Date(1_600_000_000_000);
    const longName = `${'deep/'.repeat(40)}file`;
    pack.entry({ name: 'dir', type: 'directory', mode: 0o1777, uid: 0, gid: 0, mtime });
    pack.entry({ name: 'dir/big.bin', mode: 0o4755, uid: 1000, gid: 1001, mtime, size: big.length }, big);
    pack.entry({ name: 'dir/empty', mode: 0o600, mtime }, '');
    pack.entry({ name: 'dir/link', type: 'symlink', linkname: '../etc/target', mtime });
    pack.entry({ name: 'dir/hard', type: 'link', linkname: 'dir/big.bin', mtime });
    pack.entry({ name: longName, mode: 0o644, mtime, pax: { 'SCHILY.xattr.user.k': 'v' } }, 'deep');
    pack.entry({ name: `${'p'.repeat(120)}/short`, mode: 0o644, mtime }, 'prefixed');
    pack.entry({ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666, mtime });
    pack.entry({ name: 'fifo', type: 'fifo', mode: 0o644, mtime });
    pack.finalize();
    const parts: Buffer[] = [];
    for await (const c of pack) parts.push(c as Buffer);
    const data = Buffer.concat(parts);
    for (const chunk of [7, 511, 513, 4096, data.length]) {
      const got = await read(data, chunk);
      assert.deepEqual(got.map((e) => [e.name, e.type, e.mode, e.uid, e.gid, e.size, e.linkname]), [
        ['dir', 'directory', 0o1777, 0, 0, 0, ''],
        ['dir/big.bin', 'file', 0o4755, 1000, 1001, big.length, ''],
        ['dir/empty', 'file', 0o600, 0, 0, 0, ''],
        ['dir/link', 'symlink', 0o644, 0, 0, 0, '../etc/target'],
        ['dir/hard', 'link', 0o644, 0, 0, 0, 'dir/big.bin'],
        [longName, 'file', 0o644, 0, 0, 4, ''],
        [`${'p'.repeat(120)}/short`, 'file', 0o644, 0, 0, 8, ''],
        ['dev/null', 'character-device', 0o666, 0, 0, 0, ''],
        ['fifo', 'fifo', 0o644, 0, 0, 0, ''],
      ], `chunks of ${chunk}`);
      assert.equal(got[1]!.content, big.toString('latin1'));
      assert.equal(got[5]!.content, 'deep');
      assert.deepEqual([...got[5]!.xattrs].map(([k, v]) => [k, v.toString()]), [['user.k', 'v']]);
      assert.deepEqual([got[7]!.devmajor, got[7]!.devminor], [1, 3]);
      assert.ok(got.every((e) => e.mtime.getTime() === mtime.getTime()));
    }
  });
});
