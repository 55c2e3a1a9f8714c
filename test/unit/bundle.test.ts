// Catalog bundles: a round trip through writeBundle and readBundle (byte-identical, sparse), then each hostile
// bundle or source on its own, from files and from this test's HTTP server on 127.0.0.1. Every read checks that
// nothing outside its output directory changed. Hostile tars are written by hand, header by header.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import zlib from 'node:zlib';
import { bundleMemberName, readBundle, writeBundle, type BundleContents, type ReadBundleOptions } from '../../src/image/bundle.ts';
import { urlRefusal } from '../../src/system/url-source.ts';
import { BundleServer } from '../fakes/bundle-server.ts';
import { fails } from '../fakes/expect-error.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const fileSha = (file: string): string => sha(fs.readFileSync(file));
const acceptAll = (): 'accept' => 'accept';
const imageOnly = (name: string, type: string): string => (name === 'rootfs.ext4' && type === 'file' ? 'accept' : `${name} is not part of an image bundle`);

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One ustar header block with a correct checksum. */
function header(name: string, flag: string, size: number, extra: { mode?: number; linkname?: string; devmajor?: number } = {}): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(extra.mode ?? 0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(1_700_000_000, 12), 136, 'latin1');
  h.write(flag, 156, 'latin1');
  h.write(extra.linkname ?? '', 157, 100, 'utf8');
  h.write('ustar\x0000', 257, 'latin1');
  h.write(octal(extra.devmajor ?? 0, 8), 329, 'latin1');
  h.write(octal(0, 8), 337, 'latin1');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

function file(name: string, body: string | Buffer, mode = 0o644): Buffer {
  const data = Buffer.from(body);
  return Buffer.concat([header(name, '0', data.length, { mode }), data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}

const MANIFEST = file('manifest.json', JSON.stringify({ name: 'test', rootfs: 'rootfs.ext4' }));

/** A zstd-compressed tar of `members`, with end blocks. */
function bundle(...members: Buffer[]): Buffer {
  return zlib.zstdCompressSync(Buffer.concat([...members, Buffer.alloc(1024)]));
}

/** Everything under `dir` but `skip`, with each file's content hash and each link's target. */
function snapshot(dir: string, skip: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const name of fs.readdirSync(at)) {
      const full = path.join(at, name);
      if (full === skip) continue;
      const st = fs.lstatSync(full);
      if (st.isDirectory()) {
        out[full] = 'dir';
        walk(full);
      } else {
        out[full] = st.isSymbolicLink() ? `link ${fs.readlinkSync(full)}` : `file ${st.mode.toString(8)} ${fileSha(full)}`;
      }
    }
  };
  walk(dir);
  return out;
}

let root = '';
let outDir = '';
let serial = 0;

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-bundle-'));
  outDir = path.join(root, 'out');
  fs.mkdirSync(outDir);
  fs.mkdirSync(path.join(root, 'in'));
  fs.writeFileSync(path.join(root, 'outside.txt'), 'original');
});

afterEach(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

/** Reads a bundle (bytes, kept in a file, or a source URL), asserting that nothing outside outDir changed. */
async function read(bytes: Buffer, options: Partial<ReadBundleOptions> = {}): Promise<BundleContents> {
  let source = options.source;
  if (source === undefined) {
    source = path.join(root, 'in', `b${serial++}.tar.zst`);
    fs.writeFileSync(source, bytes);
  }
  const before = snapshot(root, outDir);
  try {
    // Looked up at each call, so spyFetch's replacement of the global is what the reader uses.
    const viaGlobal = ((input: string | URL | Request, init?: RequestInit) => globalThis.fetch(input, init)) as typeof fetch;
    return await readBundle({ sha256: sha(bytes), declaredSize: bytes.length, hardCap: 1024 ** 3, outDir, members: acceptAll, fetch: viaGlobal, ...options, source });
  } finally {
    assert.deepEqual(snapshot(root, outDir), before, 'nothing outside outDir changed');
  }
}

/** Replaces global fetch with one that records every URL and refuses (without connecting) any non-loopback one. */
function spyFetch(): { urls: string[]; restore(): void } {
  const real = globalThis.fetch;
  const urls: string[] = [];
  globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    urls.push(url.href);
    if (url.hostname !== '127.0.0.1') throw new Error(`the test refuses to connect to ${url.href}`);
    return real(input, init);
  }) as typeof fetch;
  return { urls, restore: () => { globalThis.fetch = real; } };
}

describe('writeBundle then readBundle', () => {
  it('round-trips files byte for byte, modes by their x bit, and leaves zero runs as holes', async () => {
    const src = path.join(root, 'src');
    fs.mkdirSync(src);
    const rootfs = path.join(src, 'rootfs.ext4');
    const size = 64 * 1024 * 1024;
    const fd = fs.openSync(rootfs, 'w');
    fs.writeSync(fd, randomBytes(100_000), 0, 100_000, 0);
    fs.writeSync(fd, randomBytes(1024 * 1024), 0, 1024 * 1024, 30 * 1024 * 1024 + 123);
    fs.writeSync(fd, Buffer.from('the end!!!'), 0, 10, size - 10);
    fs.closeSync(fd);
    const tool = path.join(src, 'tool');
    fs.writeFileSync(tool, '#!/bin/sh\necho hi\n', { mode: 0o700 });
    const readme = path.join(src, 'readme');
    fs.writeFileSync(readme, 'hello\n', { mode: 0o600 });
    const manifest = { name: 'big', rootfs: 'rootfs.ext4', size, kernel_ref: 'host' };
    const writes: number[] = [];
    const out = path.join(root, 'in', 'big.tar.zst');
    const written = await writeBundle({
      out, manifest, progress: (bytes) => writes.push(bytes),
      files: [{ name: 'rootfs.ext4', path: rootfs }, { name: 'bin/tool', path: tool }, { name: 'docs/readme', path: readme }],
    });
    const bytes = fs.readFileSync(out);
    assert.deepEqual(written, { path: out, sha256: sha(bytes), size: bytes.length });
    assert.ok(!fs.existsSync(`${out}.partial`));
    assert.equal(writes.at(-1), size + 18 + 6);
    assert.ok(bytes.length < 2 * 1024 * 1024, `zeros compress: ${bytes.length} bytes`);

    const reads: number[] = [];
    const got = await read(bytes, { source: out, progress: (n, total) => { reads.push(n); assert.equal(total, bytes.length); } });
    assert.deepEqual(got, { manifest, files: ['rootfs.ext4', 'bin/tool', 'docs/readme'], bytes: bytes.length });
    assert.equal(reads.at(-1), bytes.length);
    for (const [name, from] of [['rootfs.ext4', rootfs], ['bin/tool', tool], ['docs/readme', readme]] as const) {
      assert.equal(fileSha(path.join(outDir, name)), fileSha(from), name);
    }
    const st = fs.statSync(path.join(outDir, 'rootfs.ext4'));
    assert.equal(st.size, size);
    assert.ok(st.blocks * 512 < size / 8, `sparse: ${st.blocks * 512} bytes on disk for ${size}`);
    assert.equal(fs.statSync(path.join(outDir, 'bin/tool')).mode & 0o777, 0o755);
    assert.equal(fs.statSync(path.join(outDir, 'docs/readme')).mode & 0o777, 0o644);
    assert.equal(fs.statSync(path.join(outDir, 'bin')).mode & 0o777, 0o755);
    assert.ok(!fs.existsSync(path.join(outDir, 'manifest.json')), 'the manifest is returned, not written');
  });

  it('reads from a file:// URL', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'data'));
    const source = path.join(root, 'in', 'url.tar.zst');
    fs.writeFileSync(source, bytes);
    const got = await read(bytes, { source: pathToFileURL(source).href, members: imageOnly });
    assert.deepEqual(got.files, ['rootfs.ext4']);
    assert.equal(fs.readFileSync(path.join(outDir, 'rootfs.ext4'), 'utf8'), 'data');
  });

  it('accepts ./ names and a ./ root entry, and skips what the policy skips', async () => {
    const bytes = bundle(Buffer.concat([header('./', '5', 0, { mode: 0o755 })]), file('./manifest.json', '{}'), file('./rootfs.ext4', 'x'), file('./extra', 'y'));
    const got = await read(bytes, { members: (name) => (name === 'extra' ? 'skip' : 'accept') });
    assert.deepEqual(got, { manifest: {}, files: ['rootfs.ext4'], bytes: bytes.length });
    assert.deepEqual(fs.readdirSync(outDir), ['rootfs.ext4']);
  });

  it('refuses a member name writeBundle cannot store', async () => {
    const src = path.join(root, 'x');
    fs.writeFileSync(src, 'x');
    await assert.rejects(writeBundle({ out: path.join(root, 'in', 'x.tar.zst'), manifest: {}, files: [{ name: '../x', path: src }] }), TypeError);
    await assert.rejects(writeBundle({ out: path.join(root, 'in', 'x.tar.zst'), manifest: {}, files: [{ name: 'manifest.json', path: src }] }), TypeError);
  });

  it('leaves no bundle and no .partial when cancelled', async () => {
    const src = path.join(root, 'x');
    fs.writeFileSync(src, randomBytes(4 * 1024 * 1024));
    const controller = new AbortController();
    const out = path.join(root, 'in', 'x.tar.zst');
    await assert.rejects(writeBundle({ out, manifest: {}, files: [{ name: 'x', path: src }], signal: controller.signal, progress: () => controller.abort() }), fails('CANCELLED'));
    assert.deepEqual(fs.readdirSync(path.join(root, 'in')), []);
  });
});

describe('member names', () => {
  it('normalises and refuses', () => {
    assert.deepEqual(bundleMemberName('./a/b/'), { name: 'a/b' });
    assert.deepEqual(bundleMemberName('./'), { name: '.' });
    for (const bad of ['', '/etc/passwd', '../x', 'a/../../x', 'a\\b', 'a\0b', 'a//b', 'a/./b', `${'n'.repeat(256)}`]) {
      assert.ok('refused' in bundleMemberName(bad), JSON.stringify(bad));
    }
  });
});

describe('hostile bundles', () => {
  it('refuses a member the policy does not accept', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'x'), file('extra.bin', 'y'));
    await assert.rejects(read(bytes, { members: imageOnly }), fails('IMAGE_NOT_FOUND', /member "extra\.bin" is refused: extra\.bin is not part of an image bundle/, { hint: true }));
    assert.ok(!fs.existsSync(path.join(outDir, 'extra.bin')));
  });

  it('refuses a name that climbs out with ..', async () => {
    const bytes = bundle(MANIFEST, file('../escape', 'pwned'));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"\.\.\/escape" is refused: its name climbs out/));
    assert.ok(!fs.existsSync(path.join(root, 'escape')));
  });

  it('refuses an absolute name', async () => {
    const target = path.join(root, 'abs-escape');
    const bytes = bundle(MANIFEST, file(target, 'pwned'));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /is an absolute path/));
    assert.ok(!fs.existsSync(target));
  });

  it('refuses a symlink, even before a write through it', async () => {
    const bytes = bundle(MANIFEST, header('evil', '2', 0, { linkname: root }), file('evil/outside.txt', 'pwned'));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"evil" is refused: it is a symlink/));
    assert.deepEqual(fs.readdirSync(outDir), []);
    assert.equal(fs.readFileSync(path.join(root, 'outside.txt'), 'utf8'), 'original');
  });

  it('refuses a hard link', async () => {
    const bytes = bundle(MANIFEST, header('rootfs.ext4', '1', 0, { linkname: path.join(root, 'outside.txt') }));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"rootfs\.ext4" is refused: it is a hard link/));
    assert.deepEqual(fs.readdirSync(outDir), []);
  });

  it('refuses a device node', async () => {
    const bytes = bundle(MANIFEST, header('null', '3', 0, { devmajor: 1 }));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"null" is refused: it is a character device/));
    assert.deepEqual(fs.readdirSync(outDir), []);
  });

  it('refuses a fifo', async () => {
    const bytes = bundle(MANIFEST, header('pipe', '6', 0));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"pipe" is refused: it is a fifo/));
  });

  it('refuses a member given twice', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'first'), file('./rootfs.ext4', 'second'));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"\.\/rootfs\.ext4" is refused: it appears twice/));
  });

  it('refuses a second manifest', async () => {
    const bytes = bundle(MANIFEST, file('manifest.json', '{"name":"other"}'));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"manifest\.json" is refused: it appears twice/));
  });

  it('refuses a file written where an earlier member put a file', async () => {
    const bytes = bundle(MANIFEST, file('a', 'file'), file('a/b', 'under a file'));
    await assert.rejects(read(bytes), fails('IMAGE_NOT_FOUND', /"a\/b" is refused: a is already a file/));
  });

  it('refuses a manifest over the cap, without reading it', async () => {
    const bytes = bundle(file('manifest.json', JSON.stringify({ pad: 'x'.repeat(200) })));
    await assert.rejects(read(bytes, { maxManifestBytes: 100 }), fails('IMAGE_NOT_FOUND', /"manifest\.json" is refused: it is 2\d\d bytes, over the 100 allowed/));
  });

  it('refuses a manifest that is not JSON', async () => {
    await assert.rejects(read(bundle(file('manifest.json', '{nope'))), fails('IMAGE_NOT_FOUND', /is not JSON/));
  });

  it('refuses a bundle with no manifest', async () => {
    await assert.rejects(read(bundle(file('rootfs.ext4', 'x'))), fails('IMAGE_NOT_FOUND', /has no manifest\.json/));
  });

  it('refuses a bundle whose sha256 does not match', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'x'));
    await assert.rejects(read(bytes, { sha256: sha(Buffer.from('something else')) }), fails('IMAGE_NOT_FOUND', /its sha256 is [0-9a-f]{64}, not the/, { hint: true }));
  });

  it('refuses a file longer than declared before reading it', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'x'));
    await assert.rejects(read(bytes, { declaredSize: bytes.length - 1 }), fails('IMAGE_NOT_FOUND', /longer than the \d+ declared/));
    assert.deepEqual(fs.readdirSync(outDir), []);
  });

  it('refuses a truncated file', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', randomBytes(10_000)));
    const source = path.join(root, 'in', 'short.tar.zst');
    fs.writeFileSync(source, bytes.subarray(0, bytes.length - 100));
    await assert.rejects(read(bytes, { source }), fails('IMAGE_NOT_FOUND', new RegExp(`truncated: ${bytes.length - 100} of the ${bytes.length} bytes`)));
  });

  it('refuses a bundle declared over the hard cap without opening it', async () => {
    const bytes = bundle(MANIFEST);
    await assert.rejects(read(bytes, { source: path.join(root, 'in', 'missing.tar.zst'), hardCap: bytes.length - 1 }), fails('IMAGE_NOT_FOUND', /over the \d+ banger accepts/));
  });

  it('refuses a tar cut short inside a body', async () => {
    const tar = Buffer.concat([MANIFEST, file('rootfs.ext4', randomBytes(5000))]);
    await assert.rejects(read(zlib.zstdCompressSync(tar.subarray(0, tar.length - 1000))), fails('IMAGE_NOT_FOUND', /^bundle .*: the tar archive is malformed: the body of "rootfs\.ext4" is cut short/));
  });

  it('refuses data that is not zstd', async () => {
    await assert.rejects(read(randomBytes(1000)), fails('IMAGE_NOT_FOUND', /not valid zstd/));
  });

  it('refuses a zstd frame that needs a window over the default limit, with a hint', async () => {
    // A frame header asking for a 1 GiB window (Window_Descriptor 0xa0), as zstd --long=30 writes.
    const bytes = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xa0, 0x01, 0x00, 0x00]);
    await assert.rejects(read(bytes), (err: unknown) => fails('IMAGE_NOT_FOUND', /128 MiB of zstd window/)(err) && /without --long/.test((err as { hint: string }).hint));
  });

  it('refuses a relative path as a source', async () => {
    await assert.rejects(read(Buffer.alloc(0), { source: 'bundle.tar.zst' }), fails('INVALID_ARGUMENT'));
  });

  it('is cancelled by its signal', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(read(bundle(MANIFEST), { signal: controller.signal }), fails('CANCELLED'));
  });
});

describe('bundles over http', () => {
  const server = new BundleServer();
  let spy: ReturnType<typeof spyFetch>;
  before(() => server.start());
  after(() => server.stop());
  beforeEach(() => { spy = spyFetch(); });
  afterEach(() => spy.restore());

  it('reads a bundle, following a redirect on loopback', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'over http'));
    server.route('/ok.tar.zst', { body: bytes });
    const source = server.route('/redirect', { status: 302, location: '/ok.tar.zst' });
    const got = await read(bytes, { source, members: imageOnly });
    assert.deepEqual(got.files, ['rootfs.ext4']);
    assert.equal(fs.readFileSync(path.join(outDir, 'rootfs.ext4'), 'utf8'), 'over http');
  });

  it('refuses a Content-Length over the declared size before reading the body', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'x'));
    // Only the headers are sent and the response stays open: reading the body would never end.
    const source = server.route('/long-cl', { contentLength: bytes.length, hang: true });
    await assert.rejects(read(bytes, { source, declaredSize: bytes.length - 1 }), fails('IMAGE_NOT_FOUND', /the server says it is \d+ bytes, longer than the \d+ declared/));
  });

  it('stops a chunked body as soon as it passes the declared size', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'x'));
    // All of it is sent, then the response stays open: only the running count can end this read.
    const source = server.route('/long-chunked', { body: bytes, contentLength: 'none', hang: true });
    await assert.rejects(read(bytes, { source, declaredSize: bytes.length - 1 }), fails('IMAGE_NOT_FOUND', /it is longer than the \d+ bytes declared/));
  });

  it('refuses a bundle declared over the hard cap without a request', async () => {
    const bytes = bundle(MANIFEST);
    const source = server.route('/capped', { body: bytes });
    await assert.rejects(read(bytes, { source, hardCap: 16 }), fails('IMAGE_NOT_FOUND', /over the 16 banger accepts/));
    assert.ok(!server.requests.includes('/capped'));
    assert.deepEqual(spy.urls, []);
  });

  it('refuses a truncated chunked body', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', randomBytes(10_000)));
    const source = server.route('/short', { body: bytes.subarray(0, 1000), contentLength: 'none' });
    await assert.rejects(read(bytes, { source }), fails('IMAGE_NOT_FOUND', new RegExp(`truncated: 1000 of the ${bytes.length} bytes`)));
  });

  it('refuses a sha256 mismatch', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', 'x'));
    const source = server.route('/tampered', { body: bytes });
    await assert.rejects(read(bytes, { source, sha256: 'ab'.repeat(32) }), fails('IMAGE_NOT_FOUND', /its sha256 is/));
  });

  it('refuses an HTTP error status', async () => {
    await assert.rejects(read(Buffer.alloc(10), { source: `${server.origin}/nothing-here` }), fails('IMAGE_NOT_FOUND', /HTTP 404/));
  });

  it('refuses plain http to a host off loopback without connecting', async () => {
    await assert.rejects(read(Buffer.alloc(10), { source: 'http://192.0.2.1/bundle.tar.zst' }), fails('IMAGE_NOT_FOUND', /plain http is only allowed to this host's loopback/));
    assert.deepEqual(spy.urls, []);
  });

  it('refuses a loopback redirect to plain http off loopback without connecting there', async () => {
    const source = server.route('/away-http', { status: 302, location: 'http://192.0.2.1/bundle.tar.zst' });
    await assert.rejects(read(Buffer.alloc(10), { source }), fails('IMAGE_NOT_FOUND', /plain http is only allowed/));
    assert.deepEqual(spy.urls, [source]);
  });

  it('refuses a loopback redirect to https off loopback without connecting there', async () => {
    const source = server.route('/away-https', { status: 307, location: 'https://192.0.2.1/bundle.tar.zst' });
    await assert.rejects(read(Buffer.alloc(10), { source }), fails('IMAGE_NOT_FOUND', /a loopback server redirected off this host/));
    assert.deepEqual(spy.urls, [source]);
  });

  it('refuses more than 5 redirects', async () => {
    const source = server.route('/loop', { status: 302, location: '/loop' });
    await assert.rejects(read(Buffer.alloc(10), { source }), fails('IMAGE_NOT_FOUND', /redirected more than 5 times/));
    assert.equal(spy.urls.length, 6);
  });

  it('is cancelled mid-body by its signal', async () => {
    const bytes = bundle(MANIFEST, file('rootfs.ext4', randomBytes(200_000)));
    const source = server.route('/slow', { body: bytes.subarray(0, 50_000), contentLength: 'none', hang: true });
    const controller = new AbortController();
    await assert.rejects(read(bytes, { source, signal: controller.signal, progress: () => controller.abort() }), fails('CANCELLED'));
  });
});

describe('redirect policy', () => {
  const u = (s: string): URL => new URL(s);
  const hop = (from: string, next: string): string | null => urlRefusal(u(next), { start: u(from), from: u(from) });
  it('allows https anywhere and http on loopback', () => {
    assert.equal(hop('https://example.com/a', 'https://cdn.example.net/b'), null);
    assert.equal(hop('http://127.0.0.1:8080/a', 'http://localhost/b'), null);
    assert.equal(hop('http://[::1]:8080/a', 'http://127.1.2.3/b'), null);
  });
  it('refuses a downgrade, other schemes, and crossing between loopback and the network', () => {
    assert.match(hop('https://example.com/a', 'http://example.com/b') ?? '', /https redirected to plain http/);
    assert.match(hop('https://127.0.0.1/a', 'http://127.0.0.1/b') ?? '', /https redirected to plain http/);
    assert.match(urlRefusal(u('http://127.0.0.1/c'), { start: u('http://127.0.0.1/a'), from: u('https://127.0.0.1/b') }) ?? '', /https redirected to plain http/);
    assert.match(hop('https://example.com/a', 'file:///etc/passwd') ?? '', /not http or https/);
    assert.match(hop('https://example.com/a', 'https://127.0.0.1/b') ?? '', /redirected to this host's loopback/);
    assert.match(hop('http://0.0.0.0/a', 'http://0.0.0.0/a') ?? '', /only allowed to this host's loopback/);
  });
});

describe('a server that closes the connection after the body', () => {
  it('is read to the end with banger\'s own fetch, even while the reader holds the body back', async () => {
    // What python's http.server does (HTTP/1.0, closed after the body): the case where Node 24.21's bundled fetch
    // can throw an uncatchable assertion (nodejs/undici#5360); banger reads bundles with undici 8 instead.
    const bytes = bundle(MANIFEST, file('rootfs.ext4', randomBytes(48 * 1024 * 1024)));
    const net = await import('node:net');
    const server = net.createServer((sock) => {
      sock.once('data', () => {
        sock.write(`HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`);
        sock.end(bytes);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as import('node:net').AddressInfo;
    const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-bundle-close-'));
    try {
      // 48 MiB arrive over loopback faster than they are decompressed, hashed and written: the body is held
      // back when the server's FIN comes.
      const got = await readBundle({
        source: `http://127.0.0.1:${port}/b.tar.zst`, sha256: sha(bytes), declaredSize: bytes.length, hardCap: 1024 ** 3, outDir, members: () => 'accept',
      });
      assert.deepEqual(got.files, ['rootfs.ext4']);
      assert.equal(got.bytes, bytes.length);
    } finally {
      server.close();
      fs.rmSync(outDir, { recursive: true, force: true });
    }
  });
});
