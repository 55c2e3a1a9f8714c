// resolveImage and downloadLayers (what ImagePuller does) against a loopback registry: the config's run settings and layer digests read, the layers brought
// into the blob cache under their digests, cached blobs not downloaded again; and the image configs refused.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { blobPath, downloadLayers, parseImageConfig, resolveImage, type FetchOptions } from '../../src/image/oci-pull.ts';
import type { ImageRef } from '../../src/image/oci-ref.ts';
import { parseImageRef } from '../../src/image/oci-ref.ts';
import { RegistryClient } from '../../src/image/oci-registry.ts';
import { FakeRegistry, sha256 } from '../fakes/fake-registry.ts';
import { fails } from '../fakes/expect-error.ts';

const tarA = Buffer.alloc(1024, 1);
const tarB = Buffer.alloc(2048, 2);

/** A pull's download half: resolve, then bring what the cache lacks. */
async function fetchImage(ref: ImageRef, o: FetchOptions) {
  const resolved = await resolveImage(ref, o);
  return { ...resolved, ...(await downloadLayers(ref, resolved.layers, o)) };
}

describe('resolveImage and downloadLayers', () => {
  const registry = new FakeRegistry('team/app');
  let dir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-pull-'));
    const base = registry.blob(gzipSync(tarA), 'application/vnd.oci.image.layer.v1.tar+gzip');
    const top = registry.blob(zstdCompressSync(tarB), 'application/vnd.oci.image.layer.v1.tar+zstd');
    registry.image('latest', {
      architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tarA), sha256(tarB)] },
      config: { Env: ['PATH=/bin', 'MODE=test'], WorkingDir: '/srv', User: 'app', Cmd: ['/bin/app'] },
    }, [base, top]);
    registry.image('short', { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tarA)] } }, [base, top]);
    await registry.start();
  });
  after(() => {
    registry.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('brings the layers into the cache and returns how the image wants to run', async () => {
    const cacheDir = path.join(dir, 'cache');
    const r = await fetchImage(parseImageRef(`${registry.host}/team/app`), { registry: new RegistryClient(), cacheDir });
    assert.deepEqual(r.run, { env: ['PATH=/bin', 'MODE=test'], workingDir: '/srv', user: 'app', entrypoint: null, cmd: ['/bin/app'] });
    assert.deepEqual(r.layers.map((l) => l.diffId), [sha256(tarA), sha256(tarB)]);
    for (const l of r.layers) {
      assert.equal(l.path, blobPath(cacheDir, l.digest));
      assert.equal(sha256(fs.readFileSync(l.path)), l.digest);
    }
    assert.ok(r.downloadedBytes > 0);
  });

  it('does not download a verified blob again', async () => {
    const before = registry.blobRequests.length;
    const r = await fetchImage(parseImageRef(`${registry.host}/team/app`), { registry: new RegistryClient(), cacheDir: path.join(dir, 'cache') });
    assert.equal(r.downloadedBytes, 0);
    // Only the config blob is read again; the layers come from the cache.
    assert.equal(registry.blobRequests.length - before, 1);
  });

  it('refuses a config whose diff_ids do not match the manifest, before downloading a layer', async () => {
    const cacheDir = path.join(dir, 'cache-short');
    await assert.rejects(fetchImage(parseImageRef(`${registry.host}/team/app:short`), { registry: new RegistryClient(), cacheDir }), fails('IMAGE_NOT_FOUND', /2 layers but its config 1/));
    assert.equal(fs.existsSync(cacheDir), false);
  });
});

describe('parseImageConfig', () => {
  it('keeps what is well-formed and leaves out the rest', () => {
    const { run, diffIds } = parseImageConfig(Buffer.from('{"config":{"Env":["A=1","bad"],"Cmd":"not a list","WorkingDir":"relative"}}'));
    assert.deepEqual(run, { env: ['A=1'], workingDir: null, user: null, entrypoint: null, cmd: null });
    assert.deepEqual(diffIds, []);
  });

  it('refuses a config that is not JSON, is for another platform, or has bad layer digests', () => {
    assert.throws(() => parseImageConfig(Buffer.from('nope')), fails('IMAGE_NOT_FOUND', /not JSON/));
    assert.throws(() => parseImageConfig(Buffer.from('{"os":"linux","architecture":"arm64"}')), fails('IMAGE_NOT_FOUND', /linux\/arm64, not linux\/amd64/));
    assert.throws(() => parseImageConfig(Buffer.from('{"os":"windows","architecture":"amd64"}')), fails('IMAGE_NOT_FOUND', /windows\/amd64/));
    assert.throws(() => parseImageConfig(Buffer.from('{"rootfs":{"diff_ids":["md5:abc"]}}')), fails('IMAGE_NOT_FOUND', /diff_ids/));
  });
});
