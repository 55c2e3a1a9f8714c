import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chooseRelease, compareVersions, parseManifest, parseSha256Sums, signBlob, signatureValid } from '../../src/system/release.ts';
import { fetchCapped, fetchTarball, releaseUrls } from '../../src/system/release-fetch.ts';
import { layoutAt, swapLink } from '../../src/system/install-layout.ts';
import { pruneVersions } from '../../src/cli/update-install.ts';
import { BundleServer } from '../fakes/bundle-server.ts';
import { fails } from '../fakes/expect-error.ts';

const entry = (version: string, over: Record<string, unknown> = {}) => ({ version, channel: 'stable', tarball: `${version}/b.tar.zst`, size: 10, sha256sums: `${version}/SHA256SUMS`, signature: `${version}/SHA256SUMS.sig`, ...over });
const manifestText = (releases: unknown[], schema = 1): string => JSON.stringify({ schema, releases });

describe('release manifest', () => {
  it('orders versions numerically, a pre-release before its release', () => {
    const sorted = ['1.10.0', '1.2.0', '1.2.0-rc.1', '0.9.9', '1.2.1'].sort(compareVersions);
    assert.deepEqual(sorted, ['0.9.9', '1.2.0-rc.1', '1.2.0', '1.2.1', '1.10.0']);
  });

  it('picks the newest stable release, or exactly --to', () => {
    const m = parseManifest(manifestText([entry('1.0.0'), entry('1.3.0-rc.1'), entry('1.2.0'), entry('2.0.0', { channel: 'beta' })]));
    assert.equal(chooseRelease(m).version, '1.2.0');
    assert.equal(chooseRelease(m, 'v1.3.0-rc.1').version, '1.3.0-rc.1');
    assert.throws(() => chooseRelease(m, '9.9.9'), fails('INVALID_ARGUMENT', /there is no release 9\.9\.9/));
  });

  it('refuses a newer schema with what to do, and anything malformed', () => {
    assert.throws(() => parseManifest(manifestText([], 2)), (err: Error & { hint?: string }) => /schema 2, newer than this banger reads/.test(err.message) && /newer banger is needed/.test(err.hint ?? ''));
    assert.throws(() => parseManifest('{'), fails('RELEASE_INVALID', /not JSON/));
    assert.throws(() => parseManifest(manifestText([entry('1.0')])), fails('RELEASE_INVALID', /MAJOR\.MINOR\.PATCH/));
    for (const bad of ['https://evil.example/x', '/etc/passwd', '../x', 'a/../../x']) {
      assert.throws(() => parseManifest(manifestText([entry('1.0.0', { tarball: bad })])), fails('RELEASE_INVALID', /relative to the manifest/), bad);
    }
    assert.throws(() => parseManifest(manifestText([entry('1.0.0', { size: 3 * 1024 ** 3 })])), fails('RELEASE_INVALID', /size/));
  });

  it('resolves release files against the manifest URL', () => {
    const urls = releaseUrls('https://example.com/banger/manifest.json', parseManifest(manifestText([entry('1.0.0')])).releases[0]!);
    assert.equal(urls.tarball, 'https://example.com/banger/1.0.0/b.tar.zst');
    assert.equal(urls.signature, 'https://example.com/banger/1.0.0/SHA256SUMS.sig');
  });
});

describe('release signatures and sums', () => {
  const key = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const privatePem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const publicPem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();

  it('verifies a cosign-style signature (base64 DER ECDSA over SHA-256), and nothing else', () => {
    const data = Buffer.from('abc  banger.tar.zst\n');
    const sig = signBlob(data, privatePem);
    assert.ok(signatureValid(data, sig, publicPem));
    // DER: a SEQUENCE of two INTEGERs.
    assert.equal(Buffer.from(sig, 'base64')[0], 0x30);
    assert.equal(signatureValid(Buffer.from('abd  banger.tar.zst\n'), sig, publicPem), false);
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.equal(signatureValid(data, sig, other), false);
    assert.equal(signatureValid(data, '', publicPem), false);
    assert.equal(signatureValid(data, 'bm90IGEgc2lnbmF0dXJl', publicPem), false);
  });

  it('verifies a signature made by openssl, as cosign and openssl dgst -sign make them', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-sig-'));
    try {
      fs.writeFileSync(path.join(dir, 'key.pem'), privatePem);
      fs.writeFileSync(path.join(dir, 'SHA256SUMS'), 'x  y\n');
      const { execFileSync } = process.getBuiltinModule('node:child_process');
      const der = execFileSync('openssl', ['dgst', '-sha256', '-sign', path.join(dir, 'key.pem'), path.join(dir, 'SHA256SUMS')]);
      assert.ok(signatureValid(Buffer.from('x  y\n'), der.toString('base64'), publicPem));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a key that is not P-256', () => {
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => signatureValid(Buffer.from('x'), 'MEUCIQ==', rsa), /not an ECDSA P-256 key/);
  });

  it('reads SHA256SUMS as sha256sum writes it and refuses a malformed line', () => {
    const hex = 'a'.repeat(64);
    assert.equal(parseSha256Sums(`${hex}  banger-1.0.0-linux-x64.tar.zst\n`).get('banger-1.0.0-linux-x64.tar.zst'), hex);
    assert.equal(parseSha256Sums(`${hex} *b.tar\n`).get('b.tar'), hex);
    assert.throws(() => parseSha256Sums(`${hex}  ../etc/passwd\n`), fails('RELEASE_INVALID', /malformed line/));
    assert.throws(() => parseSha256Sums('nothex  b.tar\n'), fails('RELEASE_INVALID', /malformed line/));
  });
});

describe('release downloads', () => {
  const server = new BundleServer();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-release-fetch-'));
  before(() => server.start());
  after(async () => {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a body past its cap, announced or not', async () => {
    const announced = server.route('/big', { body: Buffer.alloc(2000) });
    await assert.rejects(fetchCapped(announced, 1000), fails('RELEASE_INVALID', /says it is 2000 bytes, longer than the 1000 allowed/));
    const chunked = server.route('/chunked', { body: Buffer.alloc(2000), contentLength: 'none' });
    await assert.rejects(fetchCapped(chunked, 1000), fails('RELEASE_INVALID', /longer than the 1000 bytes allowed/));
  });

  it('keeps a tarball only when its sha256 matches, and never overwrites a file', async () => {
    const body = Buffer.from('release bytes');
    const url = server.route('/t.tar.zst', { body });
    const good = crypto.createHash('sha256').update(body).digest('hex');
    const dest = path.join(dir, 't.tar.zst');
    await assert.rejects(fetchTarball(url, dest, { sha256: 'b'.repeat(64), maxBytes: 100 }), fails('RELEASE_INVALID', /its sha256 is [0-9a-f]{64}, not b{64}/));
    assert.equal(fs.existsSync(dest), false);
    await fetchTarball(url, dest, { sha256: good, maxBytes: 100 });
    assert.deepEqual(fs.readFileSync(dest), body);
    await assert.rejects(fetchTarball(url, dest, { sha256: good, maxBytes: 100 }), /EEXIST/);
    const unannounced = server.route('/u.tar.zst', { body: Buffer.alloc(5000), contentLength: 'none' });
    await assert.rejects(fetchTarball(unannounced, path.join(dir, 'u'), { sha256: good, maxBytes: 100 }), fails('RELEASE_INVALID', /longer than the 100 bytes the manifest gives/));
    assert.equal(fs.existsSync(path.join(dir, 'u')), false);
  });

  it('will not follow a loopback server off this host', async () => {
    const url = server.route('/away', { status: 302, location: 'https://example.com/x' });
    await assert.rejects(fetchCapped(url, 100), fails('RELEASE_INVALID', /a loopback server redirected off this host/));
  });
});

describe('install layout', () => {
  it('swaps current in one rename and prunes all but current and previous', () => {
    const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-layout-'));
    try {
      for (const v of ['1.0.0', '1.1.0', '1.2.0']) fs.mkdirSync(path.join(prefix, 'versions', v), { recursive: true });
      swapLink(path.join(prefix, 'current'), path.join(prefix, 'versions', '1.1.0'));
      swapLink(path.join(prefix, 'current'), path.join(prefix, 'versions', '1.2.0'));
      swapLink(path.join(prefix, 'previous'), path.join(prefix, 'versions', '1.1.0'));
      assert.equal(fs.readlinkSync(path.join(prefix, 'current')), 'versions/1.2.0');
      const layout = layoutAt(prefix);
      assert.equal(layout.current, path.join(prefix, 'versions', '1.2.0'));
      assert.deepEqual(pruneVersions(layout, [layout.current!, layout.previous!]), ['1.0.0']);
      assert.deepEqual(fs.readdirSync(path.join(prefix, 'versions')).sort(), ['1.1.0', '1.2.0']);
      assert.deepEqual(fs.readdirSync(prefix).filter((n) => n.endsWith('.tmp')), []);
    } finally {
      fs.rmSync(prefix, { recursive: true, force: true });
    }
  });
});
