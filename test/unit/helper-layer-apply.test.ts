// Layers built with tar-stream, applied onto a temporary root without keeping owners (any user can run these):
// types, modes, times, whiteouts, extended attributes, and the ways a hostile layer tries to write outside the
// root. test/root/layer-apply.test.ts repeats the hostile cases as root, with owners.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import tarStream from 'tar-stream';
import { applyLayer, memberParts, type ApplyOptions } from '../../src/helper/layer-apply.ts';
import { fails } from '../fakes/expect-error.ts';

type Entry = Partial<tarStream.Header> & { name: string; body?: string };

const MTIME = new Date(1_700_000_000_000);

async function layer(entries: Entry[]): Promise<Readable> {
  const pack = tarStream.pack();
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry({ mtime: MTIME, ...header }, body ?? '', (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Readable.from([Buffer.concat(chunks)]);
}

const OCI: ApplyOptions = { ownership: false, devices: 'skip-under-dev' };

describe('applyLayer (unprivileged)', () => {
  let dir: string;
  let root: string;
  let outside: string;
  const apply = async (entries: Entry[], options: ApplyOptions = OCI) => applyLayer(await layer(entries), root, options);
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-layer-'));
    root = path.join(dir, 'root');
    fs.mkdirSync(root);
    outside = path.join(dir, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'file'), 'original');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates directories, files, symlinks and hard links with their modes and times', async () => {
    const r = await apply([
      { name: './', type: 'directory', mode: 0o755 },
      { name: './usr/', type: 'directory', mode: 0o755 },
      { name: './usr/bin/', type: 'directory', mode: 0o755 },
      { name: './usr/bin/su', type: 'file', mode: 0o4755, body: 'su' },
      { name: './usr/bin/tool', type: 'file', mode: 0o750, body: 'tool' },
      { name: './bin', type: 'symlink', linkname: 'usr/bin' },
      { name: './usr/bin/tool2', type: 'link', linkname: './usr/bin/tool' },
      { name: 'locked/', type: 'directory', mode: 0o500 },
      { name: 'locked/inside', type: 'file', mode: 0o644, body: 'written before the dir was locked' },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'implicit/parent/file', type: 'file', body: 'x' },
    ]);
    assert.equal(fs.readFileSync(path.join(root, 'usr/bin/su'), 'utf8'), 'su');
    assert.equal(fs.statSync(path.join(root, 'usr/bin/su')).mode & 0o7777, 0o4755);
    assert.equal(fs.readlinkSync(path.join(root, 'bin')), 'usr/bin');
    assert.equal(fs.statSync(path.join(root, 'usr/bin/tool2')).ino, fs.statSync(path.join(root, 'usr/bin/tool')).ino);
    assert.equal(fs.statSync(path.join(root, 'locked')).mode & 0o777, 0o500);
    assert.equal(fs.readFileSync(path.join(root, 'locked/inside'), 'utf8'), 'written before the dir was locked');
    assert.equal(fs.statSync(path.join(root, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(fs.statSync(path.join(root, 'implicit/parent')).mode & 0o7777, 0o755);
    assert.equal(fs.statSync(path.join(root, 'usr/bin/su')).mtimeMs, MTIME.getTime());
    assert.equal(fs.statSync(path.join(root, 'usr/bin')).mtimeMs, MTIME.getTime(), 'directory times are set after their files');
    assert.deepEqual(r.skipped, []);
    assert.deepEqual([...r.written].sort(), ['bin', 'implicit', 'implicit/parent', 'implicit/parent/file', 'locked', 'locked/inside', 'tmp', 'usr', 'usr/bin', 'usr/bin/su', 'usr/bin/tool', 'usr/bin/tool2']);
    fs.chmodSync(path.join(root, 'locked'), 0o755);
  });

  it('skips device nodes under dev/ and FIFOs, and hard links to them', async () => {
    const r = await apply([
      { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
      { name: 'dev/sda', type: 'block-device', mode: 0o660, devmajor: 8, devminor: 0 },
      { name: 'dev/null2', type: 'link', linkname: 'dev/null' },
      { name: 'run/pipe', type: 'fifo', mode: 0o600 },
      { name: 'run/pipe2', type: 'link', linkname: 'run/pipe' },
    ]);
    assert.deepEqual(r.skipped, ['dev/null (character-device)', 'dev/sda (block-device)', 'dev/null2 (character-device)', 'run/pipe (fifo)', 'run/pipe2 (fifo)']);
    assert.deepEqual(fs.readdirSync(root), []);
  });

  it('removes what a whiteout names and empties an opaque directory of lower layers only', async () => {
    await apply([
      { name: 'etc/', type: 'directory', mode: 0o755 },
      { name: 'etc/old.conf', type: 'file', body: 'old' },
      { name: 'etc/keep.conf', type: 'file', body: 'keep' },
      { name: 'opt/', type: 'directory', mode: 0o755 },
      { name: 'opt/lower', type: 'file', body: 'lower' },
      { name: 'srv/', type: 'directory', mode: 0o755 },
      { name: 'srv/lower/', type: 'directory', mode: 0o755 },
      { name: 'srv/lower/x', type: 'file', body: 'x' },
    ]);
    const r = await apply([
      { name: 'etc/.wh.old.conf', type: 'file' },
      { name: 'etc/.wh.never-there', type: 'file' },
      { name: 'missing/dir/.wh.x', type: 'file' },
      // Docker writes the marker after the directory's entries; umoci (next) before them.
      { name: 'opt/upper', type: 'file', body: 'upper' },
      { name: 'opt/new/deep', type: 'file', body: 'deep' },
      { name: 'opt/.wh..wh..opq', type: 'file' },
      { name: 'srv/.wh..wh..opq', type: 'file' },
      { name: 'srv/', type: 'directory', mode: 0o755 },
      { name: 'srv/new/', type: 'directory', mode: 0o755 },
      { name: 'srv/new/b', type: 'file', body: 'b' },
    ]);
    assert.equal(r.whiteouts, 5);
    assert.deepEqual(fs.readdirSync(path.join(root, 'etc')), ['keep.conf']);
    assert.deepEqual(fs.readdirSync(path.join(root, 'opt')).sort(), ['new', 'upper']);
    assert.deepEqual(fs.readdirSync(path.join(root, 'srv')), ['new']);
    assert.ok(!fs.existsSync(path.join(root, 'missing')), 'a whiteout under a missing directory creates nothing');
  });

  it('replaces a file with a directory, a directory with a file, and keeps a directory replaced by one', async () => {
    await apply([{ name: 'a', type: 'file', body: 'x' }, { name: 'b/', type: 'directory' }, { name: 'b/c', type: 'file', body: 'c' }, { name: 'd/', type: 'directory' }, { name: 'd/kept', type: 'file', body: 'k' }]);
    await apply([{ name: 'a/', type: 'directory', mode: 0o755 }, { name: 'b', type: 'file', body: 'now a file' }, { name: 'd/', type: 'directory', mode: 0o711 }]);
    assert.ok(fs.statSync(path.join(root, 'a')).isDirectory());
    assert.equal(fs.readFileSync(path.join(root, 'b'), 'utf8'), 'now a file');
    assert.equal(fs.readFileSync(path.join(root, 'd/kept'), 'utf8'), 'k');
    assert.equal(fs.statSync(path.join(root, 'd')).mode & 0o777, 0o711);
  });

  it('writes a file in place of a symlink rather than through it', async () => {
    const victim = path.join(outside, 'file');
    await apply([{ name: 'link', type: 'symlink', linkname: victim }, { name: 'link', type: 'file', body: 'replaced the link' }]);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'original');
    assert.equal(fs.readFileSync(path.join(root, 'link'), 'utf8'), 'replaced the link');
  });

  it('collects extended attributes as bytes, and forgets those of a path written again', async () => {
    const r = await apply([
      { name: 'bin/ping', type: 'file', body: 'p', pax: { 'SCHILY.xattr.security.capability': 'caps' } },
      { name: 'bin/again', type: 'file', body: 'a', pax: { 'SCHILY.xattr.user.a': '1' } },
      { name: 'bin/again', type: 'file', body: 'b' },
    ]);
    assert.deepEqual([...r.xattrs].map(([p, m]) => [p, [...m].map(([k, v]) => [k, v.toString()])]), [['bin/ping', [['security.capability', 'caps']]]]);
  });

  it('sets only the root directory itself from "."', async () => {
    await apply([{ name: '.', type: 'directory', mode: 0o700 }]);
    assert.equal(fs.statSync(root).mode & 0o777, 0o700);
    await assert.rejects(apply([{ name: './', type: 'file', body: 'x' }]), fails('IMAGE_NOT_FOUND', /names the root but is not a directory/));
  });

  it('never applies a directory mode through a symlink that replaced it later in the layer', async () => {
    fs.chmodSync(outside, 0o755);
    await apply([{ name: 'a/', type: 'directory', mode: 0o700 }, { name: 'a', type: 'symlink', linkname: outside }]);
    assert.equal(fs.statSync(outside).mode & 0o777, 0o755);
    assert.equal(fs.readlinkSync(path.join(root, 'a')), outside);
  });

  describe('refuses hostile entries and writes nothing outside the root', () => {
    const refusals: Array<[string, Entry[], RegExp, ApplyOptions?]> = [
      ['a member that climbs out', [{ name: '../escape', type: 'file', body: 'x' }], /"\.\.\/escape" is a path that climbs out with \.\./],
      ['an absolute member', [{ name: '/etc/escape', type: 'file', body: 'x' }], /is an absolute path/],
      ['a member through an absolute symlink', [{ name: 'evil', type: 'symlink', linkname: '@OUT' }, { name: 'evil/pwned', type: 'file', body: 'x' }], /"evil\/pwned" goes through symlink "evil"/],
      ['a member through a relative symlink', [{ name: 'sub/up', type: 'symlink', linkname: '../../outside' }, { name: 'sub/up/pwned', type: 'file', body: 'x' }], /goes through symlink "sub\/up"/],
      ['a whiteout through a symlink', [{ name: 'evil', type: 'symlink', linkname: '@OUT' }, { name: 'evil/.wh.file', type: 'file' }], /goes through symlink "evil"/],
      ['an opaque marker through a symlink', [{ name: 'evil', type: 'symlink', linkname: '@OUT' }, { name: 'evil/.wh..wh..opq', type: 'file' }], /goes through symlink "evil"/],
      ['a member through a file', [{ name: 'f', type: 'file', body: 'x' }, { name: 'f/g', type: 'file', body: 'x' }], /goes through "f", which is not a directory/],
      ['a hard link that climbs out', [{ name: 'h', type: 'link', linkname: '../outside/file' }], /is a hard link to a path that climbs out/],
      ['an absolute hard link', [{ name: 'h', type: 'link', linkname: '/etc/shadow' }], /is a hard link to an absolute path/],
      ['a hard link through a symlink', [{ name: 's', type: 'symlink', linkname: '@OUT' }, { name: 'h', type: 'link', linkname: 's/file' }], /"h" goes through symlink "s"/],
      ['a hard link to a directory', [{ name: 'd/', type: 'directory' }, { name: 'h', type: 'link', linkname: 'd' }], /a directory/],
      ['a hard link to nothing', [{ name: 'h', type: 'link', linkname: 'nothing' }], /not in the layers so far/],
      ['a device outside dev/', [{ name: 'usr/kmem', type: 'character-device', devmajor: 1, devminor: 2 }], /is a character device outside dev\//],
      ['a device where none are accepted', [{ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3 }], /device nodes are not accepted here/, { ownership: false, devices: 'refuse' }],
      ['a whiteout of ..', [{ name: 'a/.wh...', type: 'file' }], /whiteout that names nothing/],
      ['a whiteout of .', [{ name: 'a/.wh..', type: 'file' }], /whiteout that names nothing/],
      ['a whiteout of nothing', [{ name: 'a/.wh.', type: 'file' }], /whiteout that names nothing/],
      ['a name over 255 bytes', [{ name: `${'x'.repeat(256)}/y`, type: 'file' }], /a name over 255 bytes/],
    ];
    for (const [what, entries, pattern, options] of refusals) {
      it(what, async () => {
        const withOutside = entries.map((e) => (e.linkname === '@OUT' ? { ...e, linkname: outside } : e));
        await assert.rejects(apply(withOutside, options), fails('IMAGE_NOT_FOUND', pattern, { hint: true }));
        assert.deepEqual(fs.readdirSync(dir).sort(), ['outside', 'root']);
        assert.deepEqual(fs.readdirSync(outside), ['file']);
        assert.equal(fs.readFileSync(path.join(outside, 'file'), 'utf8'), 'original');
      });
    }
  });
});

describe('memberParts', () => {
  it('splits archive names, dropping "./" and empty components', () => {
    assert.deepEqual(memberParts('./usr//bin/'), ['usr', 'bin']);
    assert.deepEqual(memberParts('.'), []);
    assert.deepEqual(memberParts('a/./b'), ['a', 'b']);
  });

  it('refuses .., NUL, absolute paths and long components', () => {
    assert.throws(() => memberParts('a/../../b'), fails('IMAGE_NOT_FOUND', /climbs out/));
    assert.throws(() => memberParts('a/..'), fails('IMAGE_NOT_FOUND', /climbs out/));
    assert.throws(() => memberParts('a\0b'), fails('IMAGE_NOT_FOUND', /NUL/));
    assert.throws(() => memberParts('/etc/x'), fails('IMAGE_NOT_FOUND', /absolute/));
    assert.throws(() => memberParts(`a/${'é'.repeat(128)}`), fails('IMAGE_NOT_FOUND', /255 bytes/));
  });
});
