// The registry client against a registry on loopback that behaves as the distribution spec and Docker Hub's
// token service do: 401 with a Bearer challenge, a token endpoint (basic auth when configured), an OCI index
// pointing at per-platform manifests, and blobs by digest.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { formatImageRef, parseImageRef } from '../../src/image/oci-ref.ts';
import { MEDIA, parseChallenge, RegistryClient, type Descriptor } from '../../src/image/oci-registry.ts';
import { dockerConfigCredentials } from '../../src/image/docker-config.ts';
import { fails } from '../fakes/expect-error.ts';

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

describe('image references', () => {
  it('reads them as docker pull does', () => {
    assert.deepEqual(parseImageRef('debian'), { registry: 'docker.io', repository: 'library/debian', tag: 'latest', digest: null });
    assert.deepEqual(parseImageRef('debian:bookworm'), { registry: 'docker.io', repository: 'library/debian', tag: 'bookworm', digest: null });
    assert.deepEqual(parseImageRef('ghcr.io/owner/app:1.2'), { registry: 'ghcr.io', repository: 'owner/app', tag: '1.2', digest: null });
    assert.deepEqual(parseImageRef('localhost:5000/app'), { registry: 'localhost:5000', repository: 'app', tag: 'latest', digest: null });
    const d = `sha256:${'a'.repeat(64)}`;
    assert.deepEqual(parseImageRef(`127.0.0.1:5000/a/b@${d}`), { registry: '127.0.0.1:5000', repository: 'a/b', tag: null, digest: d });
    assert.equal(formatImageRef(parseImageRef('alpine')), 'docker.io/library/alpine:latest');
  });

  it('refuses what is not a reference, saying why', () => {
    assert.throws(() => parseImageRef('Debian'), fails('INVALID_ARGUMENT', /lowercase/, { hint: true }));
    assert.throws(() => parseImageRef('app@sha256:xyz'), fails('INVALID_ARGUMENT', /digest/));
    assert.throws(() => parseImageRef('app:bad/tag:x'), fails('INVALID_ARGUMENT'));
    assert.throws(() => parseImageRef(''), fails('INVALID_ARGUMENT'));
  });

  it('parses auth challenges with quoted values', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
      scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
    assert.deepEqual(parseChallenge('Basic realm="Registry"'), { scheme: 'basic', params: { realm: 'Registry' } });
  });
});

describe('RegistryClient against a loopback registry', () => {
  let server: http.Server;
  let registry: string;
  let dir: string;
  const requests: string[] = [];
  const tokenRequests: Array<{ authorization: string | undefined; scope: string | null; service: string | null }> = [];
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { type: string; body: Buffer }>();
  let layer: Descriptor;
  let tampered: Descriptor;
  let requireBasic: string | null = null;
  /** Blobs the registry answers with a redirect, as registries that keep blobs in object storage do. */
  const redirects = new Map<string, string>();

  const put = (type: string, body: Buffer): Descriptor => {
    const d = sha(body);
    manifests.set(d, { type, body });
    return { mediaType: type, digest: d, size: body.length };
  };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-oci-'));
    const layerBytes = gzipSync(Buffer.from('pretend this is a tar'));
    layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layerBytes), size: layerBytes.length };
    blobs.set(layer.digest, layerBytes);
    const config = json({ architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/usr/bin'], WorkingDir: '/srv' }, rootfs: { type: 'layers', diff_ids: [] } });
    const configDesc = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length };
    blobs.set(configDesc.digest, config);
    const wrongBytes = Buffer.from('not what the digest says');
    tampered = { mediaType: layer.mediaType, digest: sha(Buffer.from('the real bytes')), size: wrongBytes.length };
    blobs.set(tampered.digest, wrongBytes);
    const amd64 = put(MEDIA.ociManifest, json({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: configDesc, layers: [layer] }));
    const arm64 = put(MEDIA.ociManifest, json({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: configDesc, layers: [] }));
    const index = json({
      schemaVersion: 2, mediaType: MEDIA.ociIndex,
      manifests: [{ ...arm64, platform: { os: 'linux', architecture: 'arm64' } }, { ...amd64, platform: { os: 'linux', architecture: 'amd64' } }],
    });
    put(MEDIA.ociIndex, index);
    const armOnly = json({ schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: [{ ...arm64, platform: { os: 'linux', architecture: 'arm64' } }] });
    put(MEDIA.ociIndex, armOnly);
    const tags = new Map([['latest', sha(index)], ['arm', sha(armOnly)]]);

    server = http.createServer((req, res) => {
      const url = new URL(req.url!, 'http://x');
      requests.push(`${req.method} ${url.pathname}`);
      if (url.pathname === '/token') {
        tokenRequests.push({ authorization: req.headers.authorization, scope: url.searchParams.get('scope'), service: url.searchParams.get('service') });
        if (requireBasic && req.headers.authorization !== requireBasic) {
          res.writeHead(401).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 'tok-123' }));
        return;
      }
      if (req.headers.authorization !== 'Bearer tok-123') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${registry}/token",service="test-registry",scope="repository:team/app:pull"` }).end();
        return;
      }
      const m = /^\/v2\/team\/app\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
      if (!m) {
        res.writeHead(404).end();
        return;
      }
      if (m[1] === 'manifests' && m[2] === 'liar') {
        // A registry (or proxy) whose bytes are not the digest it states.
        const body = manifests.get(tags.get('latest')!)!.body;
        res.writeHead(200, { 'content-type': MEDIA.ociIndex, 'docker-content-digest': `sha256:${'1'.repeat(64)}` }).end(body);
        return;
      }
      if (m[1] === 'manifests') {
        const digest = tags.get(m[2]!) ?? m[2]!;
        const found = manifests.get(digest);
        if (!found) {
          res.writeHead(404).end();
          return;
        }
        res.writeHead(200, { 'content-type': found.type, 'docker-content-digest': digest, 'content-length': found.body.length }).end(found.body);
        return;
      }
      const away = redirects.get(m[2]!);
      if (away) {
        res.writeHead(307, { location: away }).end();
        return;
      }
      const blob = blobs.get(m[2]!);
      if (!blob) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(blob);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(() => {
    server.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('answers the bearer challenge, resolves the index to linux/amd64, and reads the config', async () => {
    const client = new RegistryClient();
    const ref = parseImageRef(`${registry}/team/app`);
    const image = await client.resolve(ref);
    assert.deepEqual(image.layers, [layer]);
    assert.deepEqual(tokenRequests.at(-1), { authorization: undefined, scope: 'repository:team/app:pull', service: 'test-registry' });
    const config = JSON.parse((await client.blobBytes(ref, image.config)).toString()) as { config: { WorkingDir: string } };
    assert.equal(config.config.WorkingDir, '/srv');
    // The token is reused: one token request for the whole pull.
    assert.equal(tokenRequests.length, 1);
  });

  it('downloads a blob to its file only when digest and size match, leaving nothing otherwise', async () => {
    const client = new RegistryClient();
    const ref = parseImageRef(`${registry}/team/app`);
    const file = path.join(dir, 'blobs', layer.digest.slice(7));
    assert.equal(await client.downloadBlob(ref, layer, file), layer.size);
    assert.deepEqual(fs.readFileSync(file), blobs.get(layer.digest));
    const bad = path.join(dir, 'blobs', tampered.digest.slice(7));
    await assert.rejects(client.downloadBlob(ref, tampered, bad), fails('IMAGE_NOT_FOUND', /hash to sha256:/, { hint: true }));
    assert.equal(fs.existsSync(bad) || fs.existsSync(`${bad}.partial`), false);
    await assert.rejects(client.downloadBlob(ref, { ...layer, size: layer.size - 1 }, path.join(dir, 'short')), fails('IMAGE_NOT_FOUND', /larger than the/));
  });

  it('says which platforms an image has when linux/amd64 is not among them', async () => {
    await assert.rejects(new RegistryClient().resolve(parseImageRef(`${registry}/team/app:arm`)), fails('IMAGE_NOT_FOUND', /has no linux\/amd64 image \(it has linux\/arm64\)/));
  });

  it('refuses a manifest whose bytes are not the digest stated, and names a missing manifest', async () => {
    const client = new RegistryClient();
    await assert.rejects(client.resolve(parseImageRef(`${registry}/team/app:liar`)), fails('IMAGE_NOT_FOUND', /hashes to sha256:[0-9a-f]{64}, not sha256:1111/, { hint: true }));
    await assert.rejects(client.resolve(parseImageRef(`${registry}/team/app@sha256:${'0'.repeat(64)}`)), fails('IMAGE_NOT_FOUND', /has no/));
    await assert.rejects(client.resolve(parseImageRef(`${registry}/team/app:nope`)), fails('IMAGE_NOT_FOUND', /has no .*manifests/, { hint: true }));
  });

  it('sends basic credentials from a Docker config to the token endpoint', async () => {
    const cfg = path.join(dir, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ auths: { [registry]: { auth: Buffer.from('alice:s3cret').toString('base64') } } }));
    requireBasic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
    try {
      await new RegistryClient({ credentials: dockerConfigCredentials(cfg) }).resolve(parseImageRef(`${registry}/team/app`));
      assert.equal(tokenRequests.at(-1)?.authorization, requireBasic);
      await assert.rejects(new RegistryClient().resolve(parseImageRef(`${registry}/team/app`)), fails('IMAGE_NOT_FOUND', /refused a token/, { hint: true }));
    } finally {
      requireBasic = null;
    }
  });

  it('follows a redirect to blob storage without sending it the registry\'s credentials, and refuses one that leaves loopback', async () => {
    const stored = Buffer.from('a blob kept in object storage');
    const desc = { mediaType: layer.mediaType, digest: sha(stored), size: stored.length };
    const seen: Array<string | undefined> = [];
    const storage = http.createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(200).end(stored);
    });
    await new Promise<void>((resolve) => storage.listen(0, '127.0.0.1', resolve));
    try {
      redirects.set(desc.digest, `http://127.0.0.1:${(storage.address() as net.AddressInfo).port}/bucket/blob?sig=1`);
      const client = new RegistryClient();
      const ref = parseImageRef(`${registry}/team/app`);
      assert.deepEqual(await client.blobBytes(ref, desc), stored);
      assert.deepEqual(seen, [undefined], 'the Bearer token stayed with the registry');
      const away = { ...desc, digest: sha(Buffer.from('elsewhere')) };
      redirects.set(away.digest, 'http://registry.example/blob');
      await assert.rejects(client.blobBytes(ref, away), fails('IMAGE_NOT_FOUND', /neither https nor a loopback/));
      redirects.set(away.digest, 'https://registry.example/blob');
      await assert.rejects(client.blobBytes(ref, away), fails('IMAGE_NOT_FOUND', /redirected off this host/));
      assert.equal(seen.length, 1);
    } finally {
      storage.close();
    }
  });

  it('uses https for a registry that is not on loopback or listed as insecure', async () => {
    const urls: string[] = [];
    const fakeFetch = (async (url: string | URL) => {
      urls.push(String(url));
      throw new TypeError('fetch failed');
    }) as typeof fetch;
    await assert.rejects(new RegistryClient({ fetch: fakeFetch }).resolve(parseImageRef('registry.example:5000/a')), fails('NETWORK_FAILED', /cannot reach registry\.example:5000/));
    await assert.rejects(new RegistryClient({ fetch: fakeFetch, insecure: ['lan.example:5000'] }).resolve(parseImageRef('lan.example:5000/a')), fails('NETWORK_FAILED'));
    await assert.rejects(new RegistryClient({ fetch: fakeFetch }).resolve(parseImageRef('alpine')), fails('NETWORK_FAILED'));
    assert.deepEqual(urls, [
      'https://registry.example:5000/v2/a/manifests/latest',
      'http://lan.example:5000/v2/a/manifests/latest',
      'https://registry-1.docker.io/v2/library/alpine/manifests/latest',
    ]);
  });
});

describe('dockerConfigCredentials', () => {
  it('reads auth, or username and password, under the keys docker login writes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-dockercfg-'));
    try {
      const file = path.join(dir, 'config.json');
      fs.writeFileSync(file, JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('hub:pw:with:colons').toString('base64') },
          'http://lan.example:5000': { username: 'u', password: 'p' },
          'ghcr.io': { auth: 'not base64 of a pair' },
        },
      }));
      const creds = dockerConfigCredentials(file);
      assert.deepEqual(await creds('docker.io'), { username: 'hub', password: 'pw:with:colons' });
      assert.deepEqual(await creds('lan.example:5000'), { username: 'u', password: 'p' });
      assert.equal(await creds('ghcr.io'), null);
      assert.equal(await creds('quay.io'), null);
      assert.equal(await dockerConfigCredentials(path.join(dir, 'missing.json'))('docker.io'), null);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('dockerConfigCredentials with credential helpers', () => {
  it('asks credHelpers for their registry and credsStore for the rest, as docker does, through the real protocol', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-credhelper-'));
    const oldPath = process.env.PATH;
    try {
      // A helper that answers for two servers, and says what docker's helpers say for any other.
      fs.writeFileSync(path.join(dir, 'docker-credential-fake'), `#!/bin/sh
[ "$1" = get ] || exit 2
read server
case "$server" in
  lan.example:5000) echo '{"ServerURL":"lan.example:5000","Username":"u","Secret":"from-helper"}' ;;
  https://index.docker.io/v1/) echo '{"ServerURL":"x","Username":"hub","Secret":"hub-secret"}' ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
`, { mode: 0o755 });
      fs.writeFileSync(path.join(dir, 'docker-credential-broken'), '#!/bin/sh\necho boom >&2\nexit 3\n', { mode: 0o755 });
      process.env.PATH = `${dir}:${oldPath}`;
      const file = path.join(dir, 'config.json');
      fs.writeFileSync(file, JSON.stringify({ credsStore: 'fake', credHelpers: { 'ghcr.io': 'broken', 'quay.io': 'absent' } }));
      const creds = dockerConfigCredentials(file);
      assert.deepEqual(await creds('lan.example:5000'), { username: 'u', password: 'from-helper' });
      assert.deepEqual(await creds('docker.io'), { username: 'hub', password: 'hub-secret' });
      assert.equal(await creds('other.example'), null);
      await assert.rejects(creds('ghcr.io'), fails('TOOL_FAILED', /docker-credential-broken get failed \(exit 3\): boom/));
      await assert.rejects(creds('quay.io'), fails('MISSING_TOOL', /docker-credential-absent, which is not installed/));
    } finally {
      process.env.PATH = oldPath;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
