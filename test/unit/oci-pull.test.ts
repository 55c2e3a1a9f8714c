// pullImage against a loopback registry: a gzip layer and a zstd layer applied in order (with a whiteout), the
// run config read from the image config, and cached blobs not downloaded again.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import tarStream from 'tar-stream';
import { blobPath, parseRunConfig, pullImage } from '../../src/image/oci-pull.ts';
import { parseImageRef } from '../../src/image/oci-ref.ts';
import { RegistryClient } from '../../src/image/oci-registry.ts';
import { FakeRegistry } from '../fakes/fake-registry.ts';
import { fails } from '../fakes/expect-error.ts';

async function tar(entries: Array<{ name: string; type?: 'file' | 'directory'; body?: string; mode?: number }>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const { body, ...h } of entries) await new Promise<void>((resolve, reject) => pack.entry({ type: 'file', mode: 0o644, ...h }, body ?? '', (e) => (e ? reject(e) : resolve())));
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('pullImage', () => {
  const registry = new FakeRegistry('team/app');
  let dir: string;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-pull-'));
    const base = registry.blob(gzipSync(await tar([
      { name: 'etc/', type: 'directory', mode: 0o755 }, { name: 'etc/os-release', body: 'ID=test\n' }, { name: 'etc/motd', body: 'old motd' },
      { name: 'bin/', type: 'directory', mode: 0o755 }, { name: 'bin/app', body: '#!/bin/sh\necho app\n', mode: 0o755 },
    ])), 'application/vnd.oci.image.layer.v1.tar+gzip');
    const top = registry.blob(zstdCompressSync(await tar([{ name: 'etc/.wh.motd' }, { name: 'srv/', type: 'directory', mode: 0o755 }, { name: 'srv/data', body: 'data' }])),
      'application/vnd.oci.image.layer.v1.tar+zstd');
    registry.image('latest', { architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin', 'MODE=test'], WorkingDir: '/srv', User: 'app', Cmd: ['/bin/app'] } }, [base, top]);
    await registry.start();
  });
  after(() => {
    registry.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('applies the layers in order and returns how the image wants to run', async () => {
    const root = path.join(dir, 'root1');
    const r = await pullImage(parseImageRef(`${registry.host}/team/app`), { registry: new RegistryClient(), cacheDir: path.join(dir, 'cache'), root, ownership: false });
    assert.equal(fs.readFileSync(path.join(root, 'etc/os-release'), 'utf8'), 'ID=test\n');
    assert.equal(fs.existsSync(path.join(root, 'etc/motd')), false, 'the whiteout in the second layer removed it');
    assert.equal(fs.readFileSync(path.join(root, 'srv/data'), 'utf8'), 'data');
    assert.equal(fs.statSync(path.join(root, 'bin/app')).mode & 0o777, 0o755);
    assert.deepEqual(r.config, { env: ['PATH=/bin', 'MODE=test'], workingDir: '/srv', user: 'app', entrypoint: null, cmd: ['/bin/app'] });
    assert.equal(r.layers, 2);
    assert.ok(r.downloadedBytes > 0);
  });

  it('does not download a verified blob again', async () => {
    const before = registry.blobRequests.length;
    const r = await pullImage(parseImageRef(`${registry.host}/team/app`), { registry: new RegistryClient(), cacheDir: path.join(dir, 'cache'), root: path.join(dir, 'root2'), ownership: false });
    assert.equal(r.downloadedBytes, 0);
    // Only the config blob is read again; the layers come from the cache.
    assert.equal(registry.blobRequests.length - before, 1);
    const layers = registry.blobRequests.slice(0, before).filter((d) => fs.existsSync(blobPath(path.join(dir, 'cache'), d)));
    assert.equal(layers.length, 2, 'both layers are in the cache under their digests');
  });

  it('reads a run config that lacks fields, and refuses one that is not JSON', () => {
    assert.deepEqual(parseRunConfig(Buffer.from('{"config":{"Env":["A=1"],"Cmd":"not a list"}}')), { env: ['A=1'], workingDir: null, user: null, entrypoint: null, cmd: null });
    assert.throws(() => parseRunConfig(Buffer.from('nope')), fails('IMAGE_NOT_FOUND', /not JSON/));
  });
});
