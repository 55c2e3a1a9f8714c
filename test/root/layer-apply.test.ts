// Layers applied as bangerd-root applies them: as root, keeping owners. Owners and setuid bits survive, hard
// links share an inode, and each hostile layer is refused with everything outside the root left as it was:
// the root tier (scripts/test-e2e.sh).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import tarStream from 'tar-stream';
import { applyLayer, type ApplyOptions } from '../../src/helper/layer-apply.ts';
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

const OCI: ApplyOptions = { ownership: true, devices: 'skip-under-dev' };

/** Everything under `dir` but `skip`, with what a write, chmod, chown or link would change. */
function snapshot(dir: string, skip: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      if (p === skip) continue;
      const st = fs.lstatSync(p);
      const content = st.isFile() ? fs.readFileSync(p, 'utf8') : st.isSymbolicLink() ? fs.readlinkSync(p) : '';
      out.set(path.relative(dir, p), JSON.stringify([st.mode, st.uid, st.gid, st.nlink, st.ino, st.mtimeMs, content]));
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out;
}

function statOf(p: string): string {
  const st = fs.lstatSync(p);
  return JSON.stringify([st.mode, st.uid, st.gid, st.nlink, st.ino, st.mtimeMs, st.size]);
}

describe('applyLayer as root', () => {
  let base: string;
  let root: string;
  let outside: string;
  let before: Map<string, string>;
  let shadow: string;
  const apply = async (entries: Entry[], options: ApplyOptions = OCI) => applyLayer(await layer(entries), root, options);

  beforeEach(() => {
    base = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-layer-root-'));
    // Deep enough that ../../../.. from root/sub stays inside base, where the snapshot looks.
    root = path.join(base, 'n1', 'n2', 'root');
    fs.mkdirSync(root, { recursive: true });
    outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(outside, 'dir'), { recursive: true });
    fs.writeFileSync(path.join(outside, 'file'), 'original', { mode: 0o644 });
    fs.chownSync(path.join(outside, 'file'), 65534, 65534);
    before = snapshot(base, root);
    shadow = statOf('/etc/shadow');
  });
  afterEach(() => fs.rmSync(base, { recursive: true, force: true }));

  /** The layer is refused, and nothing outside the root changed or appeared. */
  async function refuses(entries: Entry[], pattern: RegExp, options: ApplyOptions = OCI): Promise<void> {
    await assert.rejects(apply(entries, options), fails('IMAGE_NOT_FOUND', pattern, { hint: true }));
    assert.deepEqual(snapshot(base, root), before);
    assert.equal(fs.readFileSync(path.join(outside, 'file'), 'utf8'), 'original');
    assert.equal(statOf('/etc/shadow'), shadow);
  }

  it('keeps numeric owners of files, directories and symlinks', async () => {
    await apply([
      { name: 'home/', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      { name: 'home/u/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000 },
      { name: 'home/u/notes', type: 'file', mode: 0o640, uid: 1000, gid: 1001, body: 'n' },
      { name: 'home/u/link', type: 'symlink', linkname: 'notes', uid: 1000, gid: 1002 },
      // tar-stream's pack clamps ids over 262143 in the header; PAX carries the real ones.
      { name: 'big', type: 'file', uid: 3_000_000, gid: 3_000_001, pax: { uid: '3000000', gid: '3000001' }, body: 'b' },
    ]);
    const own = (p: string) => {
      const st = fs.lstatSync(path.join(root, p));
      return [st.uid, st.gid, st.mode & 0o7777];
    };
    assert.deepEqual(own('home/u'), [1000, 1000, 0o700]);
    assert.deepEqual(own('home/u/notes'), [1000, 1001, 0o640]);
    assert.deepEqual(own('home/u/link').slice(0, 2), [1000, 1002]);
    assert.deepEqual(own('big').slice(0, 2), [3_000_000, 3_000_001]);
  });

  it('keeps setuid and setgid bits on files given to another owner', async () => {
    await apply([
      { name: 'usr/bin/su', type: 'file', mode: 0o4755, uid: 0, gid: 0, body: 'su' },
      { name: 'usr/bin/mine', type: 'file', mode: 0o6750, uid: 1000, gid: 50, body: 'x' },
      { name: 'srv/shared/', type: 'directory', mode: 0o2775, uid: 1000, gid: 50 },
    ]);
    assert.equal(fs.statSync(path.join(root, 'usr/bin/su')).mode & 0o7777, 0o4755);
    assert.equal(fs.statSync(path.join(root, 'usr/bin/mine')).mode & 0o7777, 0o6750);
    assert.equal(fs.statSync(path.join(root, 'srv/shared')).mode & 0o7777, 0o2775);
  });

  it('makes a hard link that shares its source inode', async () => {
    await apply([{ name: 'bin/a', type: 'file', mode: 0o755, body: 'a' }, { name: 'bin/b', type: 'link', linkname: 'bin/a' }]);
    const a = fs.lstatSync(path.join(root, 'bin/a'));
    assert.equal(fs.lstatSync(path.join(root, 'bin/b')).ino, a.ino);
    assert.equal(a.nlink, 2);
  });

  it('replaces a symlink with a file without writing through it', async () => {
    await apply([{ name: 'f', type: 'symlink', linkname: path.join(outside, 'file') }]);
    await apply([{ name: 'f', type: 'file', mode: 0o644, body: 'mine' }]);
    assert.equal(fs.readFileSync(path.join(root, 'f'), 'utf8'), 'mine');
    assert.deepEqual(snapshot(base, root), before);
  });

  it('keeps what the same layer wrote when an opaque marker follows or precedes it', async () => {
    await apply([{ name: 'opt/lower', type: 'file', body: 'l' }, { name: 'srv/lower', type: 'file', body: 'l' }]);
    await apply([
      { name: 'opt/upper', type: 'file', body: 'u' },
      { name: 'opt/.wh..wh..opq', type: 'file' },
      { name: 'srv/.wh..wh..opq', type: 'file' },
      { name: 'srv/', type: 'directory', mode: 0o755 },
      { name: 'srv/new/b', type: 'file', body: 'b' },
    ]);
    assert.deepEqual(fs.readdirSync(path.join(root, 'opt')), ['upper']);
    assert.deepEqual(fs.readdirSync(path.join(root, 'srv')), ['new']);
  });

  it('refuses a member that climbs out with ..', async () => {
    await refuses([{ name: '../../../outside/file', type: 'file', body: 'pwned' }], /climbs out/);
  });

  it('refuses an absolute member', async () => {
    await refuses([{ name: path.join(outside, 'file'), type: 'file', body: 'pwned' }], /absolute path/);
  });

  it('refuses a member written through an absolute symlink to an outside directory', async () => {
    await refuses([{ name: 'evil', type: 'symlink', linkname: outside }, { name: 'evil/file', type: 'file', body: 'pwned' }], /goes through symlink "evil"/);
  });

  it('refuses a member written through a relative ../../.. symlink', async () => {
    await refuses([
      { name: 'sub/', type: 'directory', mode: 0o755 },
      { name: 'sub/up', type: 'symlink', linkname: '../../../../outside' },
      { name: 'sub/up/new', type: 'file', body: 'pwned' },
    ], /goes through symlink "sub\/up"/);
  });

  it('refuses a whiteout through a symlink to an outside directory', async () => {
    await refuses([{ name: 'evil', type: 'symlink', linkname: outside }, { name: 'evil/.wh.file', type: 'file' }], /goes through symlink "evil"/);
    await refuses([{ name: 'evil', type: 'symlink', linkname: outside }, { name: 'evil/.wh..wh..opq', type: 'file' }], /goes through symlink "evil"/);
  });

  it('refuses a hard link to an outside file with ../..', async () => {
    await refuses([{ name: 'h', type: 'link', linkname: '../../../outside/file' }], /hard link to a path that climbs out/);
  });

  it('refuses an absolute hard link to /etc/shadow', async () => {
    await refuses([{ name: 'shadow', type: 'link', linkname: '/etc/shadow' }], /hard link to an absolute path/);
  });

  it('refuses a hard link through a symlink parent', async () => {
    await refuses([{ name: 's', type: 'symlink', linkname: '/etc' }, { name: 'shadow', type: 'link', linkname: 's/shadow' }], /goes through symlink "s"/);
    await refuses([{ name: 's', type: 'symlink', linkname: outside }, { name: 'h', type: 'link', linkname: 's/file' }], /goes through symlink "s"/);
  });

  it('refuses a character device outside dev/', async () => {
    await refuses([{ name: 'usr/kmem', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 2 }], /character device outside dev\//);
  });

  it('refuses any device where none are accepted', async () => {
    await refuses([{ name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 }], /not accepted here/, { ownership: true, devices: 'refuse' });
    await refuses([{ name: 'dev/sda', type: 'block-device', mode: 0o660, devmajor: 8, devminor: 0 }], /not accepted here/, { ownership: true, devices: 'refuse' });
  });

  it('refuses whiteouts that name nothing', async () => {
    for (const name of ['a/.wh.', 'a/.wh..', 'a/.wh...', '.wh..']) await refuses([{ name, type: 'file' }], /whiteout that names nothing/);
  });

  it('never sets a directory mode through a symlink that later replaced it', async () => {
    await apply([{ name: 'd/', type: 'directory', mode: 0o777, uid: 1000, gid: 1000 }, { name: 'd', type: 'symlink', linkname: outside }]);
    assert.deepEqual(snapshot(base, root), before);
  });
});
