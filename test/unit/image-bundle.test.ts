// Catalog image bundles end to end on this host without root: a catalog file, bundles written with writeBundle,
// a real (tiny) ext4 made by mkfs.ext4 -d, pulled through ImageService. A bundle that is not what it should be
// registers nothing and leaves no directory; a good one registers with what its manifest says, and its kernel.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ImageService } from '../../src/daemon/services/image-service.ts';
import { writeBundle } from '../../src/image/bundle.ts';
import { loadCatalog } from '../../src/image/catalog.ts';
import { RegistryClient } from '../../src/image/oci-registry.ts';
import type { CallContext } from '../../src/protocol/jsonrpc.ts';
import { Store } from '../../src/store/store.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { FakePrivilegedOps } from '../fakes/fake-privileged-ops.ts';
import { fails } from '../fakes/expect-error.ts';

const ctx = (): CallContext => ({ signal: new AbortController().signal, progress: () => undefined });
const manifest = (over: Record<string, unknown> = {}) => ({
  schemaVersion: 1, kind: 'image', name: 'tiny', rootfs: 'rootfs.ext4', kernel_ref: 'k1', boot: 'agent', has_sshd: false, run: null, ...over,
});

describe('catalog image bundles', () => {
  let dir: string;
  let store: Store;
  let images: ImageService;
  let rootfs: string;
  const kernelsAsked: string[] = [];
  const entries: Array<Record<string, unknown>> = [];

  async function publish(name: string, m: object, files: Array<{ name: string; path: string }>): Promise<void> {
    const out = path.join(dir, 'served', `${name}.tar.zst`);
    const w = await writeBundle({ out, manifest: m, files });
    entries.push({ name, url: `${name}.tar.zst`, sha256: w.sha256, size: w.size, kernel_ref: null });
    fs.writeFileSync(path.join(dir, 'served', 'catalog.json'), JSON.stringify({ schemaVersion: 1, images: entries }));
  }

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-bundles-'));
    fs.mkdirSync(path.join(dir, 'served'));
    fs.mkdirSync(path.join(dir, 'tree', 'etc'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'tree', 'etc', 'hello'), 'hi\n');
    rootfs = path.join(dir, 'rootfs.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', path.join(dir, 'tree'), rootfs, '8M']);
    entries.length = 0;
    kernelsAsked.length = 0;
    store = new Store(':memory:');
    images = new ImageService({
      store, ops: new FakePrivilegedOps(), runner: new NodeProcessRunner(), clock: new FakeClock(), imagesDir: path.join(dir, 'images'), vmsDir: path.join(dir, 'vms'),
      mirror: 'http://deb.example/debian', blobCacheDir: path.join(dir, 'oci'), registry: () => new RegistryClient(),
      catalog: () => loadCatalog(path.join(dir, 'served', 'catalog.json')),
      kernels: {
        ensure: async (name) => {
          kernelsAsked.push(name);
          return { id: name, version: '6.1', kernelPath: '/k', initrdPath: '/i', source: 'test', createdAt: '', format: 'elf' };
        },
        importFiles: async () => { throw new Error('not used'); },
      },
    });
  });
  afterEach(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const leftovers = (): string[] => (fs.existsSync(path.join(dir, 'images')) ? fs.readdirSync(path.join(dir, 'images'), { recursive: true }) as string[] : []);

  it('registers a good bundle with what its manifest says, labelled for banger, and brings its kernel', async () => {
    await publish('tiny', manifest(), [{ name: 'rootfs.ext4', path: rootfs }]);
    const r = await images.pull({ ref: 'tiny' }, ctx());
    assert.equal(r.image.name, 'tiny');
    assert.deepEqual([r.image.boot, r.image.hasSshd, r.image.kernelRef], ['agent', false, 'k1']);
    assert.match(r.image.source, /^bundle:file:/);
    assert.deepEqual(kernelsAsked, ['k1']);
    assert.equal(execFileSync('e2label', [r.image.path], { encoding: 'utf8' }).trim(), 'banger-root');
    assert.equal((await images.pull({ ref: 'tiny' }, ctx())).upToDate, true);
    assert.equal((await images.ensure('tiny', ctx())).path, r.image.path);
  });

  it('a pull its only caller cancels stops, and registers nothing', async () => {
    await publish('tiny', manifest(), [{ name: 'rootfs.ext4', path: rootfs }]);
    const controller = new AbortController();
    const pulling = images.pull({ ref: 'tiny' }, { signal: controller.signal, progress: () => undefined });
    controller.abort();
    await assert.rejects(pulling, fails('CANCELLED'));
    // The caller is answered at once; the shared pull winds down on its own.
    const running = (images as unknown as { bundlePulls: { has(key: string): boolean } }).bundlePulls;
    while (running.has('tiny')) await new Promise<void>((resolve) => setImmediate(resolve));
    assert.deepEqual(images.list(), []);
    assert.deepEqual(leftovers(), []);
  });

  it('refuses a manifest that names a file the bundle does not hold, and a manifest of the wrong kind', async () => {
    await publish('norootfs', manifest({ name: 'norootfs' }), []);
    await assert.rejects(images.pull({ ref: 'norootfs' }, ctx()), fails('IMAGE_NOT_FOUND', /names rootfs\.ext4, which the bundle does not hold/));
    await publish('kernelish', { ...manifest({ name: 'kernelish' }), kind: 'kernel' }, [{ name: 'rootfs.ext4', path: rootfs }]);
    await assert.rejects(images.pull({ ref: 'kernelish' }, ctx()), fails('IMAGE_NOT_FOUND', /manifest\.json is not valid/));
    assert.deepEqual(images.list(), []);
    assert.deepEqual(leftovers(), []);
  });

  it('refuses a member other than rootfs.ext4, and a rootfs that is not ext4', async () => {
    await publish('extra', manifest({ name: 'extra' }), [{ name: 'rootfs.ext4', path: rootfs }, { name: 'etc/passwd', path: rootfs }]);
    await assert.rejects(images.pull({ ref: 'extra' }, ctx()), fails('IMAGE_NOT_FOUND', /not etc\/passwd/));
    const junk = path.join(dir, 'junk');
    fs.writeFileSync(junk, Buffer.alloc(64 * 1024, 7));
    await publish('junk', manifest({ name: 'junk' }), [{ name: 'rootfs.ext4', path: junk }]);
    await assert.rejects(images.pull({ ref: 'junk' }, ctx()), fails('IMAGE_NOT_FOUND', /not a clean ext4/));
    assert.deepEqual(images.list(), []);
    assert.deepEqual(leftovers(), []);
  });

  it('refuses a catalog entry whose name has a path separator, or that is not JSON', async () => {
    fs.writeFileSync(path.join(dir, 'served', 'catalog.json'), JSON.stringify({ schemaVersion: 1, images: [{ name: '../x', url: 'x', sha256: 'a'.repeat(64), size: 1 }] }));
    await assert.rejects(images.pull({ ref: 'x' }, ctx()), fails('IMAGE_NOT_FOUND', /catalog .* is not valid: images\.0\.name/));
    fs.writeFileSync(path.join(dir, 'served', 'catalog.json'), 'nope');
    await assert.rejects(loadCatalog(path.join(dir, 'served', 'catalog.json')), fails('IMAGE_NOT_FOUND', /is not JSON/));
  });

  it('resolves entry URLs against the catalog, and refuses a plain http catalog on another host without fetching it', async () => {
    fs.writeFileSync(path.join(dir, 'served', 'catalog.json'), JSON.stringify({ schemaVersion: 1, images: [{ name: 'a', url: 'sub/a.tar.zst', sha256: 'a'.repeat(64), size: 1 }] }));
    const c = await loadCatalog(`file://${path.join(dir, 'served', 'catalog.json')}`);
    assert.equal(c.images[0]!.url, `file://${path.join(dir, 'served', 'sub', 'a.tar.zst')}`);
    await assert.rejects(loadCatalog('http://192.0.2.1/catalog.json'), fails('INVALID_ARGUMENT', /plain http on another host/));
  });
});
