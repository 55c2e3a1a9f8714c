// ImageService with OCI pulls: a loopback registry of the test's own, bangerd-root faked (it writes the image
// file and answers what the tree held), the store real. Pulls register an image only when complete, coalesce,
// stop when every caller gave up, and leave nothing behind when they fail; delete, show and the blob cache.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ImageService } from '../../src/daemon/services/image-service.ts';
import { defaultImageName } from '../../src/daemon/services/image-pull.ts';
import { parseImageRef } from '../../src/image/oci-ref.ts';
import { RegistryClient } from '../../src/image/oci-registry.ts';
import type { CallContext, ProgressEvent } from '../../src/protocol/jsonrpc.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import { Store } from '../../src/store/store.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { FakeRegistry, sha256 } from '../fakes/fake-registry.ts';
import { fails } from '../fakes/expect-error.ts';

const layerTar = Buffer.alloc(3072, 7);

function ctx(signal = new AbortController().signal): CallContext & { events: ProgressEvent[] } {
  const events: ProgressEvent[] = [];
  return { signal, progress: (e) => events.push(e), events };
}

const vmOf = (image: string): VmInfo => ({
  id: 'bbbbbbbbbbbb', name: 'box', state: 'stopped', image, kernel: 'k', vcpus: 1, memoryMib: 512, diskGib: 8, ip: '172.30.0.3',
  mac: '52:54:00:bb:bb:bb', tap: 'bgtbbbbbbbbbbbb', accel: null, pid: null, createdAt: '2026-11-23T00:00:00.000Z', nat: false, workspace: null,
});

describe('ImageService and OCI pulls', () => {
  let dir: string;
  let store: Store;
  let ops: FakePrivilegedOps;
  let registry: FakeRegistry;
  let images: ImageService;
  let ref: string;
  const logs: string[] = [];

  beforeEach(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-images-'));
    store = new Store(':memory:');
    ops = new FakePrivilegedOps();
    ops.importResult = { sizeBytes: 1 << 30, boot: 'agent', hasSshd: false, uid: 1000, gid: 1000, skipped: ['dev/null (character-device)'], droppedXattrs: [] };
    registry = new FakeRegistry('test/busybox');
    const layer = registry.blob(gzipSync(layerTar), 'application/vnd.oci.image.layer.v1.tar+gzip');
    registry.image('latest', { os: 'linux', architecture: 'amd64', rootfs: { type: 'layers', diff_ids: [sha256(layerTar)] }, config: { Env: ['FOO=bar'], User: 'app', WorkingDir: '/opt' } }, [layer]);
    await registry.start();
    ref = `${registry.host}/test/busybox`;
    images = new ImageService({
      store, ops, runner: new NodeProcessRunner(), clock: new FakeClock(), imagesDir: path.join(dir, 'images'), vmsDir: path.join(dir, 'vms'), mirror: 'http://deb.example/debian',
      blobCacheDir: path.join(dir, 'oci'), registry: () => new RegistryClient(), catalog: async () => ({ schemaVersion: 1, images: [], kernels: [] }), log: (m) => logs.push(m),
    });
  });
  afterEach(() => {
    registry.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers a pulled image with how it boots and runs, after bangerd-root made it', async () => {
    const c = ctx();
    const r = await images.pull({ ref }, c);
    assert.equal(r.upToDate, false);
    assert.ok(r.downloadedBytes > 0);
    assert.equal(r.image.name, 'busybox');
    assert.equal(r.image.ref, `${registry.host}/test/busybox:latest`);
    assert.equal(r.image.boot, 'agent');
    assert.equal(r.image.hasSshd, false);
    assert.deepEqual(r.image.run, { env: ['FOO=bar'], workingDir: '/opt', user: 'app', uid: 1000, gid: 1000, entrypoint: null, cmd: null });
    assert.deepEqual(r.skipped, ['dev/null (character-device)']);
    assert.equal(fs.readFileSync(r.image.path, 'utf8'), 'fake ext4');
    assert.deepEqual(store.getImage('busybox'), r.image);
    const [call] = ops.callsTo('importLayers') as Array<{ layers: Array<{ path: string; diffId: string }>; user: string; devices: string }>;
    assert.equal(call!.user, 'app');
    assert.equal(call!.devices, 'skip-under-dev');
    assert.equal(call!.layers[0]!.diffId, sha256(layerTar));
    assert.ok(fs.existsSync(call!.layers[0]!.path), 'the layer is in the blob cache');
    assert.ok(c.events.some((e) => /downloading/.test(e.message)));
  });

  it('answers up to date for a pull of the same manifest, and finds the image by its reference', async () => {
    await images.pull({ ref }, ctx());
    const again = await images.pull({ ref: `${ref}:latest` }, ctx());
    assert.equal(again.upToDate, true);
    assert.equal(ops.callsTo('importLayers').length, 1);
    assert.equal(images.show(ref).image.name, 'busybox');
    assert.equal((await images.ensure(ref, ctx())).name, 'busybox');
  });

  it('pulls an OCI reference given as a VM image on first use', async () => {
    const image = await images.ensure(ref, ctx());
    assert.equal(image.name, 'busybox');
    assert.equal(ops.callsTo('importLayers').length, 1);
  });

  it('coalesces concurrent pulls of one reference into one download and one import', async () => {
    const release = ops.hold('importLayers');
    const second = ctx();
    const a = images.pull({ ref }, ctx());
    await new Promise<void>((resolve) => setImmediate(resolve));
    const b = images.pull({ ref: `${ref}:latest` }, second);
    release();
    const [ra, rb] = await Promise.all([a, b]);
    assert.deepEqual(ra, rb);
    assert.equal(ops.callsTo('importLayers').length, 1);
    assert.equal(registry.blobRequests.filter((d) => d === ra.image.layers[0]).length, 1, 'the layer was downloaded once');
    assert.ok(second.events.some((e) => /another pull .* is under way/.test(e.message)));
  });

  it('a pull cancelled by its only caller registers nothing and leaves no image directory; the blobs stay', async () => {
    const release = ops.hold('importLayers');
    const controller = new AbortController();
    const pulling = images.pull({ ref }, ctx(controller.signal));
    while (ops.callsTo('importLayers').length === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    controller.abort();
    await assert.rejects(pulling, fails('CANCELLED'));
    release();
    // The work saw its signal fire (every caller gave up) and undoes itself once bangerd-root answers.
    while (fs.existsSync(path.join(dir, 'images', 'busybox')) && fs.readdirSync(path.join(dir, 'images', 'busybox')).length > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    assert.equal(store.getImage('busybox'), null);
    assert.equal(images.cacheList().length, 1, 'the verified layer stays cached');
    assert.deepEqual(images.cacheList()[0]!.images, []);
  });

  it('a failed import registers nothing and removes what it made', async () => {
    ops.fail('importLayers');
    await assert.rejects(images.pull({ ref }, ctx()), fails('NETWORK_FAILED'));
    assert.equal(store.getImage('busybox'), null);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'images', 'busybox')), []);
  });

  it('refuses a name another image has, and a built-in name', async () => {
    await images.pull({ ref }, ctx());
    store.upsertImage({ ...store.getImage('busybox')!, name: 'other', ref: 'elsewhere/x:latest' });
    await assert.rejects(images.pull({ ref, name: 'other' }, ctx()), fails('INVALID_ARGUMENT', /taken by/));
    await assert.rejects(images.pull({ ref, name: 'debian-bookworm' }, ctx()), fails('INVALID_ARGUMENT', /built-in/));
  });

  it('refuses to delete an image a VM is made from, naming the VM; deletes it otherwise', async () => {
    const { image } = await images.pull({ ref }, ctx());
    store.insertVm(vmOf('busybox'));
    assert.throws(() => images.delete('busybox'), fails('VM_BAD_STATE', /used by VM box/));
    assert.deepEqual(images.show('busybox').vms, ['box']);
    store.deleteVm('bbbbbbbbbbbb');
    assert.deepEqual(images.delete(ref), { name: 'busybox' });
    assert.equal(fs.existsSync(image.path), false);
    assert.throws(() => images.show('busybox'), fails('IMAGE_NOT_FOUND'));
  });

  it('prunes blobs no image was made from, and all of them with all', async () => {
    await images.pull({ ref }, ctx());
    fs.writeFileSync(path.join(dir, 'oci', 'blobs', 'sha256', 'f'.repeat(64)), 'orphan');
    assert.deepEqual(images.cachePrune({}), { removed: 1, freedBytes: 6 });
    assert.equal(images.cacheList().length, 1);
    assert.deepEqual(images.cacheList()[0]!.images, ['busybox']);
    assert.equal(images.cachePrune({ all: true }).removed, 1);
    assert.deepEqual(images.cacheList(), []);
  });

  it('sweeps unfinished downloads and image directories nothing is registered for', async () => {
    const { image } = await images.pull({ ref }, ctx());
    fs.writeFileSync(path.join(dir, 'oci', 'blobs', 'sha256', `${'e'.repeat(64)}.partial`), 'half');
    fs.mkdirSync(path.join(dir, 'images', 'ghost', 'abc'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'images', 'busybox', 'old-version'));
    images.sweep();
    assert.deepEqual(fs.readdirSync(path.join(dir, 'images')), ['busybox']);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'images', 'busybox')), [path.basename(path.dirname(image.path))]);
    assert.equal(fs.readdirSync(path.join(dir, 'oci', 'blobs', 'sha256')).some((n) => n.endsWith('.partial')), false);
  });
});

describe('defaultImageName', () => {
  it('is the last component, with the tag unless latest, or a digest prefix', () => {
    assert.equal(defaultImageName(parseImageRef('127.0.0.1:5000/test/busybox')), 'busybox');
    assert.equal(defaultImageName(parseImageRef('debian:bookworm-slim')), 'debian-bookworm-slim');
    assert.equal(defaultImageName(parseImageRef(`alpine@sha256:${'a'.repeat(64)}`)), 'alpine-aaaaaaaaaaaa');
    assert.equal(defaultImageName(parseImageRef('ghcr.io/o/x:V1_2')), 'x-v1_2');
  });
});
