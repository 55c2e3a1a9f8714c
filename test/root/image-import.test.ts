// bangerd-root's image import for real (root: owners, setuid, the hand-over through setpriv): layers written by
// the test with tar-stream, gzip and zstd, applied in order, packed with mkfs.ext4 and read back with debugfs.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { importLayers, type LayerBlob } from '../../src/helper/image-import.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { fails } from '../fakes/expect-error.ts';

const OWNER = { uid: 65534, gid: 65534 };
const runner = new NodeProcessRunner();
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One tar member, written by hand so PAX records (a binary xattr) are exactly what the test says. */
function header(name: string, o: { type?: string; mode?: number; uid?: number; gid?: number; size?: number; linkname?: string }): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write(`${(o.mode ?? 0o644).toString(8).padStart(7, '0')}\0`, 100);
  h.write(`${(o.uid ?? 0).toString(8).padStart(7, '0')}\0`, 108);
  h.write(`${(o.gid ?? 0).toString(8).padStart(7, '0')}\0`, 116);
  h.write(`${(o.size ?? 0).toString(8).padStart(11, '0')}\0`, 124);
  h.write(`${(1_700_000_000).toString(8).padStart(11, '0')}\0`, 136);
  h.write('        ', 148);
  h.write(o.type ?? '0', 156);
  if (o.linkname) h.write(o.linkname, 157, 100);
  h.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return h;
}

function padded(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

type Member = { name: string; type?: string; mode?: number; uid?: number; gid?: number; body?: string | Buffer; linkname?: string; xattrs?: Record<string, Buffer> };

function tar(members: Member[]): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    if (m.xattrs) {
      const records = Object.entries(m.xattrs).map(([k, v]) => {
        const key = Buffer.from(` SCHILY.xattr.${k}=`);
        let len = key.length + v.length + 1;
        len += String(len).length;
        if (String(len).length !== String(len - String(len).length).length) len++;
        return Buffer.concat([Buffer.from(String(len)), key, v, Buffer.from('\n')]);
      });
      const pax = Buffer.concat(records);
      parts.push(header('PaxHeader', { type: 'x', size: pax.length }), padded(pax));
    }
    const body = Buffer.from(m.body ?? '');
    parts.push(header(m.name, { ...m, size: m.type && m.type !== '0' ? 0 : body.length }), padded(m.type && m.type !== '0' ? Buffer.alloc(0) : body));
  }
  return Buffer.concat([...parts, Buffer.alloc(1024)]);
}

function debugfs(image: string, command: string): string {
  return execFileSync('debugfs', ['-R', command, image], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
}

// A file capability (CAP_NET_RAW+ep, VFS v2): bytes that are not UTF-8.
const CAPABILITY = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0xff, 0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);

describe('importLayers', { timeout: 120_000 }, () => {
  let dir: string;
  let cache: string;
  let work: string;
  const blob = (bytes: Buffer, name: string): string => {
    const file = path.join(cache, name);
    fs.writeFileSync(file, bytes);
    return file;
  };

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-import-'));
    fs.chmodSync(dir, 0o755);
    cache = path.join(dir, 'cache');
    fs.mkdirSync(cache);
    fs.chownSync(cache, OWNER.uid, OWNER.gid);
    work = path.join(dir, 'work');
    fs.mkdirSync(work, { mode: 0o700 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  function layers(): LayerBlob[] {
    const base = tar([
      { name: 'bin/', type: '5', mode: 0o755 },
      { name: 'bin/tool', mode: 0o4755, body: '#!/bin/sh\n' },
      { name: 'bin/tool-link', type: '1', linkname: 'bin/tool' },
      { name: 'usr/', type: '5', mode: 0o755 },
      { name: 'usr/sbin/', type: '5', mode: 0o755 },
      { name: 'usr/sbin/ping', mode: 0o755, body: 'ping', xattrs: { 'security.capability': CAPABILITY } },
      { name: 'sbin', type: '2', linkname: 'usr/sbin' },
      { name: 'etc/', type: '5', mode: 0o755 },
      { name: 'etc/passwd', body: 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n' },
      { name: 'etc/group', body: 'root:x:0:\napp:x:1001:\nstaff:x:50:\n' },
      { name: 'home/', type: '5', mode: 0o755 },
      { name: 'home/app/', type: '5', mode: 0o700, uid: 1000, gid: 1001 },
      { name: 'home/app/notes', mode: 0o600, uid: 1000, gid: 1001, body: 'mine' },
      { name: 'opt/', type: '5', mode: 0o755 },
      { name: 'opt/old', body: 'old' },
      { name: '.dockerenv', body: '' },
      { name: 'dev/', type: '5', mode: 0o755 },
      { name: 'dev/null', type: '3', mode: 0o666 },
    ]);
    const top = tar([
      { name: 'opt/.wh..wh..opq' },
      { name: 'opt/', type: '5', mode: 0o755 },
      { name: 'opt/new', body: 'new' },
      { name: 'usr/sbin/sshd', mode: 0o755, body: 'sshd' },
      { name: 'etc/.wh.group' },
    ]);
    const g = gzipSync(base);
    const z = zstdCompressSync(top);
    return [
      { path: blob(g, 'base'), digest: sha(g), diffId: sha(base), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' },
      { path: blob(z, 'top'), digest: sha(z), diffId: sha(top), mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' },
    ];
  }

  const options = (l: LayerBlob[], output: string, user: string | null = 'app') => ({
    runner, owner: OWNER, layers: l, output, minSizeBytes: 0, user, devices: 'skip-under-dev' as const, signal: new AbortController().signal, progress: () => undefined, workRoot: work,
  });

  it('applies the layers with owners, setuid, links, whiteouts and xattrs, and hands the owner the image', async () => {
    const output = path.join(cache, 'rootfs.ext4');
    const r = await importLayers(options(layers(), output));
    assert.equal(r.boot, 'agent', 'no systemd in the image');
    assert.equal(r.hasSshd, true);
    assert.deepEqual([r.uid, r.gid], [1000, 1001]);
    assert.deepEqual(r.skipped.map((s) => s.split(' ')[0]), ['dev/null']);
    assert.deepEqual(r.droppedXattrs, []);
    assert.equal(fs.statSync(output).uid, OWNER.uid, "the image is the owner's");
    assert.deepEqual(fs.readdirSync(work), [], 'the build directory is gone');

    assert.match(debugfs(output, 'stat /bin/tool'), /Mode:\s+04755/);
    assert.match(debugfs(output, 'stat /home/app/notes'), /User:\s+1000\s+Group:\s+1001/);
    const inode = (p: string): string => /Inode: (\d+)/.exec(debugfs(output, `stat ${p}`))![1]!;
    assert.equal(inode('/bin/tool-link'), inode('/bin/tool'), 'the hard link kept its inode');
    assert.match(debugfs(output, 'stat /sbin'), /Type: symlink/);
    assert.match(debugfs(output, 'ls /opt'), /new/);
    assert.doesNotMatch(debugfs(output, 'ls /opt'), /old/, 'the opaque directory hid the lower layer');
    assert.doesNotMatch(debugfs(output, 'ls /etc'), /group/, 'the whiteout removed it');
    assert.doesNotMatch(debugfs(output, 'ls /'), /\.dockerenv/);
    assert.match(debugfs(output, 'ls /'), /proc/);
    const xattr = path.join(dir, 'cap');
    execFileSync('debugfs', ['-R', `ea_get -f ${xattr} /usr/sbin/ping security.capability`, output], { stdio: 'ignore' });
    assert.deepEqual(fs.readFileSync(xattr), CAPABILITY, 'the binary capability is byte for byte');
  });

  it('refuses a layer whose bytes do not match its digest, and leaves nothing', async () => {
    const l = layers();
    fs.appendFileSync(l[1]!.path, Buffer.from([0]));
    const output = path.join(cache, 'bad.ext4');
    await assert.rejects(importLayers(options(l, output)), fails('IMAGE_NOT_FOUND', /hash to/));
    assert.equal(fs.existsSync(output), false);
    assert.deepEqual(fs.readdirSync(work), []);
  });

  it('refuses gzip bytes labelled zstd, and a user the image does not have', async () => {
    const l = layers();
    await assert.rejects(importLayers(options([{ ...l[0]!, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' }], path.join(cache, 'x.ext4'))), fails('IMAGE_NOT_FOUND', /not zstd/));
    await assert.rejects(importLayers(options(l, path.join(cache, 'y.ext4'), 'nobody-here')), fails('IMAGE_NOT_FOUND', /nobody-here/));
    assert.deepEqual(fs.readdirSync(work), []);
  });

  it("reads blobs with the owner's rights: a directory swapped for a link to root's files reaches nothing", async () => {
    // A valid layer only root may read, and a link to its directory where the owner's cache has a blob directory.
    const secret = path.join(dir, 'roots-only');
    fs.mkdirSync(secret, { mode: 0o700 });
    const body = tar([{ name: 'etc/', type: '5', mode: 0o755 }, { name: 'etc/shadow', mode: 0o600, body: 'root:secret' }]);
    fs.writeFileSync(path.join(secret, 'blob'), body, { mode: 0o600 });
    fs.symlinkSync(secret, path.join(cache, 'swapped'));
    try {
      const layer = { path: path.join(cache, 'swapped', 'blob'), digest: sha(body), diffId: sha(body), mediaType: 'application/vnd.oci.image.layer.v1.tar' };
      const output = path.join(cache, 'stolen.ext4');
      await assert.rejects(importLayers(options([layer], output, null)), fails('IMAGE_NOT_FOUND', /cannot be opened by uid 65534: EACCES/));
      assert.equal(fs.existsSync(output), false);
      assert.deepEqual(fs.readdirSync(work), []);
    } finally {
      fs.rmSync(path.join(cache, 'swapped'));
    }
  });
});
