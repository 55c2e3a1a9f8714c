// Layers built with tar-stream, applied onto a temporary root: types, modes, owners, whiteouts, and the ways a
// hostile layer tries to write outside the root.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import tarStream from 'tar-stream';
import { applyLayer, archivePath, resolveInRoot } from '../../src/image/layer-apply.ts';
import { fails } from '../fakes/expect-error.ts';

type Entry = Partial<tarStream.Header> & { name: string; body?: string };

async function layer(entries: Entry[]): Promise<Readable> {
  const pack = tarStream.pack();
  for (const { body, ...header } of entries) {
    await new Promise<void>((resolve, reject) => pack.entry({ mtime: new Date(1_700_000_000_000), ...header }, body ?? '', (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Readable.from([Buffer.concat(chunks)]);
}

const asRoot = process.getuid?.() === 0;

describe('applyLayer', () => {
  let dir: string;
  let root: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-layer-'));
    root = path.join(dir, 'root');
    fs.mkdirSync(root);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates directories, files, symlinks and hard links with their modes, setuid bits and owners', async () => {
    const r = await applyLayer(await layer([
      { name: 'usr/', type: 'directory', mode: 0o755 },
      { name: 'usr/bin/', type: 'directory', mode: 0o755 },
      { name: 'usr/bin/su', type: 'file', mode: 0o4755, uid: 0, gid: 0, body: 'su' },
      { name: 'usr/bin/tool', type: 'file', mode: 0o750, uid: 1000, gid: 1001, body: 'tool' },
      { name: 'bin', type: 'symlink', linkname: 'usr/bin' },
      { name: 'usr/bin/tool2', type: 'link', linkname: 'usr/bin/tool' },
      { name: 'locked/', type: 'directory', mode: 0o500 },
      { name: 'locked/inside', type: 'file', mode: 0o644, body: 'written before the dir was locked' },
      { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
    ]), root, { ownership: asRoot });
    assert.equal(fs.readFileSync(path.join(root, 'usr/bin/su'), 'utf8'), 'su');
    assert.equal(fs.statSync(path.join(root, 'usr/bin/su')).mode & 0o7777, 0o4755);
    assert.equal(fs.readlinkSync(path.join(root, 'bin')), 'usr/bin');
    assert.equal(fs.statSync(path.join(root, 'usr/bin/tool2')).ino, fs.statSync(path.join(root, 'usr/bin/tool')).ino);
    assert.equal(fs.statSync(path.join(root, 'locked')).mode & 0o777, 0o500);
    assert.equal(fs.readFileSync(path.join(root, 'locked/inside'), 'utf8'), 'written before the dir was locked');
    assert.deepEqual(r.skipped, ['dev/null (character-device)']);
    if (asRoot) {
      const st = fs.statSync(path.join(root, 'usr/bin/tool'));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o7777], [1000, 1001, 0o750]);
    }
  });

  it('removes what a whiteout names and empties an opaque directory of lower layers only', async () => {
    await applyLayer(await layer([
      { name: 'etc/', type: 'directory', mode: 0o755 },
      { name: 'etc/old.conf', type: 'file', body: 'old' },
      { name: 'etc/keep.conf', type: 'file', body: 'keep' },
      { name: 'opt/', type: 'directory', mode: 0o755 },
      { name: 'opt/lower', type: 'file', body: 'lower' },
    ]), root, { ownership: false });
    const r = await applyLayer(await layer([
      { name: 'etc/.wh.old.conf', type: 'file' },
      { name: 'opt/upper', type: 'file', body: 'upper' },
      { name: 'opt/.wh..wh..opq', type: 'file' },
    ]), root, { ownership: false });
    assert.equal(r.whiteouts, 2);
    assert.deepEqual(fs.readdirSync(path.join(root, 'etc')), ['keep.conf']);
    assert.deepEqual(fs.readdirSync(path.join(root, 'opt')), ['upper']);
  });

  it('replaces a file with a directory and a directory with a file', async () => {
    await applyLayer(await layer([{ name: 'a', type: 'file', body: 'x' }, { name: 'b/', type: 'directory' }, { name: 'b/c', type: 'file', body: 'c' }]), root, { ownership: false });
    await applyLayer(await layer([{ name: 'a/', type: 'directory', mode: 0o755 }, { name: 'b', type: 'file', body: 'now a file' }]), root, { ownership: false });
    assert.ok(fs.statSync(path.join(root, 'a')).isDirectory());
    assert.equal(fs.readFileSync(path.join(root, 'b'), 'utf8'), 'now a file');
  });

  it('never writes outside the root: .. is refused, and symlinks are followed as if the root were /', async () => {
    const outside = path.join(dir, 'outside');
    fs.mkdirSync(outside);
    await assert.rejects(applyLayer(await layer([{ name: '../escape', type: 'file', body: 'x' }]), root, { ownership: false }), fails('IMAGE_NOT_FOUND', /climbs out/));
    await assert.rejects(applyLayer(await layer([{ name: 'etc/.wh...', type: 'file' }]), root, { ownership: false }), fails('IMAGE_NOT_FOUND', /whites out no name/));
    await applyLayer(await layer([
      { name: 'abs', type: 'symlink', linkname: outside },
      { name: 'abs/owned', type: 'file', body: 'lands inside the root' },
      { name: 'up', type: 'symlink', linkname: '../../../../outside' },
      { name: 'up/owned2', type: 'file', body: 'also inside' },
      { name: 'hard', type: 'link', linkname: 'abs/owned' },
    ]), root, { ownership: false });
    assert.deepEqual(fs.readdirSync(outside), [], 'nothing was written outside');
    assert.equal(fs.readFileSync(path.join(root, outside, 'owned'), 'utf8'), 'lands inside the root');
    assert.equal(fs.readFileSync(path.join(root, 'outside', 'owned2'), 'utf8'), 'also inside');
    assert.equal(fs.readFileSync(path.join(root, 'hard'), 'utf8'), 'lands inside the root');
  });

  it('writes a file in place of a symlink rather than through it', async () => {
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'untouched');
    await applyLayer(await layer([{ name: 'link', type: 'symlink', linkname: victim }, { name: 'link', type: 'file', body: 'replaced the link' }]), root, { ownership: false });
    assert.equal(fs.readFileSync(victim, 'utf8'), 'untouched');
    assert.equal(fs.readFileSync(path.join(root, 'link'), 'utf8'), 'replaced the link');
  });

  it('collects PAX extended attributes for the caller to set', async () => {
    const r = await applyLayer(await layer([{ name: 'bin/ping', type: 'file', body: 'p', pax: { 'SCHILY.xattr.security.capability': 'caps' } }]), root, { ownership: false });
    assert.deepEqual([...r.xattrs.entries()], [['bin/ping', { 'security.capability': 'caps' }]]);
  });
});

describe('layer paths', () => {
  it('splits archive names and refuses .. and NUL', () => {
    assert.deepEqual(archivePath('./usr//bin/'), ['usr', 'bin']);
    assert.throws(() => archivePath('a/../../b'), fails('IMAGE_NOT_FOUND'));
    assert.throws(() => archivePath('a\0b'), fails('IMAGE_NOT_FOUND'));
  });

  it('resolves through a missing directory without following anything', () => {
    assert.equal(resolveInRoot('/r', ['a', 'b', 'c']), '/r/a/b/c');
  });
});
