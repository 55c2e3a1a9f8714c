// End to end for catalog bundles and kernels: an HTTP server of the test's own on 127.0.0.1 (in a child process:
// the CLI runs with spawnSync, which would stall a server in this one) serves a catalog, an
// image bundle made with `banger image make-bundle --rootfs-tar` and a kernel bundle made from the host's kernel
// (an ELF vmlinux extracted from its vmlinuz, with the modules a guest needs). `image pull NAME` brings the kernel
// the image names, and the result boots; then promote, register with a kernel file and its own initrd, and the
// refusals. Guests live in a network namespace this test creates and deletes.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER, e2eBanger } from './e2e-banger.ts';
import { busyboxRootfsLayer } from './oci-test-images.ts';
import { freePort } from '../fakes/free-port.ts';
import { startStaticServer, type StaticServer } from './static-server.ts';
import { writeBundle } from '../../src/image/bundle.ts';
import { extractVmlinux } from '../../src/kernel/kernel-format.ts';
import { findHostKernel, HOST_KERNEL_SOURCE } from '../../src/kernel/host-kernel.ts';
import { GUEST_MODULES, moduleName, resolveModules } from '../../src/kernel/initrd.ts';
import { S_IFDIR, S_IFREG, writeCpio } from '../../src/kernel/cpio.ts';
import { gzipSync } from 'node:zlib';

const NETNS = `banger-e2e-cat-${process.pid}`;
const { home: HOME, env: ENV, banger, ok, teardown } = e2eBanger('banger-e2e-cat-', NETNS);
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-e2e-cat-'));
const SERVED = path.join(WORK, 'served');
const host = findHostKernel(HOST_KERNEL_SOURCE);

let server: StaticServer | null = null;
let port = 0;

interface Entry { name: string; url: string; sha256: string; size: number; kernel_ref?: string | null; description?: string }
const catalog: { schemaVersion: 1; images: Entry[]; kernels: Entry[] } = { schemaVersion: 1, images: [], kernels: [] };

function writeCatalog(): void {
  fs.writeFileSync(path.join(SERVED, 'catalog.json'), JSON.stringify(catalog));
}

function json<T>(args: string[]): T {
  return JSON.parse(ok([...args, '--json']).stdout) as T;
}

/** A kernel bundle of the host's kernel: vmlinux (ELF) and the modules the guest initrd loads. */
async function kernelBundle(out: string): Promise<{ sha256: string; size: number }> {
  const dir = path.join(WORK, 'kernel');
  fs.mkdirSync(path.join(dir, 'modules'), { recursive: true });
  await extractVmlinux(host.vmlinuz, path.join(dir, 'vmlinux'));
  const dep = fs.readFileSync(path.join(host.modulesDir, 'modules.dep'), 'utf8');
  const builtin = fs.readFileSync(path.join(host.modulesDir, 'modules.builtin'), 'utf8');
  const files = resolveModules(dep, new Set(builtin.split('\n').filter(Boolean).map(moduleName)), GUEST_MODULES);
  for (const f of files) {
    fs.mkdirSync(path.join(dir, 'modules', path.dirname(f)), { recursive: true });
    fs.copyFileSync(path.join(host.modulesDir, f), path.join(dir, 'modules', f));
  }
  fs.writeFileSync(path.join(dir, 'modules', 'modules.dep'), dep);
  fs.writeFileSync(path.join(dir, 'modules', 'modules.builtin'), builtin);
  const bundleFiles = [{ name: 'vmlinux', path: path.join(dir, 'vmlinux') }, { name: 'modules/modules.dep', path: path.join(dir, 'modules', 'modules.dep') },
    { name: 'modules/modules.builtin', path: path.join(dir, 'modules', 'modules.builtin') }, ...files.map((f) => ({ name: `modules/${f}`, path: path.join(dir, 'modules', f) }))];
  const written = await writeBundle({ out, manifest: { schemaVersion: 1, kind: 'kernel', name: 'hostelf', version: host.version, kernel: 'vmlinux' }, files: bundleFiles });
  return { sha256: written.sha256, size: written.size };
}

describe('catalog bundles and kernels', { timeout: 30 * 60_000 }, () => {
  before(async () => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
    fs.mkdirSync(SERVED);
    port = await freePort();
    writeCatalog();
    server = await startStaticServer(SERVED, port);
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), `[dns]\nport = ${await freePort()}\n\n[image]\ncatalog = "http://127.0.0.1:${port}/catalog.json"\n`);
    const k = await kernelBundle(path.join(SERVED, 'hostelf.tar.zst'));
    catalog.kernels.push({ name: 'hostelf', url: 'hostelf.tar.zst', ...k, description: `the host's ${host.version} as an ELF vmlinux` });
    writeCatalog();
  });

  after(() => {
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
    server?.stop();
    fs.rmSync(WORK, { recursive: true, force: true });
  });

  test('make-bundle turns a rootfs tar into a bundle and prints what the catalog needs', async () => {
    const tar = path.join(WORK, 'rootfs.tar');
    fs.writeFileSync(tar, await busyboxRootfsLayer());
    const made = json<{ path: string; sha256: string; size: number; name: string; kernelRef: string | null }>(
      ['image', 'make-bundle', '--rootfs-tar', tar, '--name', 'tiny', '--kernel-ref', 'hostelf', '--out', path.join(SERVED, 'tiny.tar.zst')]);
    assert.equal(made.sha256, createHash('sha256').update(fs.readFileSync(made.path)).digest('hex'));
    assert.equal(made.size, fs.statSync(made.path).size);
    catalog.images.push({ name: 'tiny', url: 'tiny.tar.zst', sha256: made.sha256, size: made.size, kernel_ref: made.kernelRef });
    // The same bytes under a wrong digest: refused when pulled.
    fs.copyFileSync(made.path, path.join(SERVED, 'tampered.tar.zst'));
    catalog.images.push({ name: 'tampered', url: 'tampered.tar.zst', sha256: 'f'.repeat(64), size: made.size, kernel_ref: null });
    writeCatalog();
    assert.equal(json<unknown[]>(['image', 'list']).length, 0, 'make-bundle registers nothing');
  });

  test('kernel list --available shows the catalog; a bundle with a wrong sha256 registers nothing', () => {
    const listed = json<Array<{ name: string; state: string }>>(['kernel', 'list', '--available']);
    assert.deepEqual(listed.map((k) => [k.name, k.state]), [['hostelf', 'available']]);
    const bad = banger(['image', 'pull', 'tampered']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /sha256/);
    assert.equal(json<unknown[]>(['image', 'list']).length, 0);
  });

  test('image pull NAME brings the bundle and the kernel it names, and the result boots that kernel', () => {
    const pulled = ok(['image', 'pull', 'tiny']);
    assert.match(pulled.stderr, /kernel hostelf/);
    const kernel = json<{ id: string; format: string; version: string }>(['kernel', 'show', 'hostelf']);
    assert.deepEqual([kernel.format, kernel.version], ['elf', host.version]);
    ok(['vm', 'run', '-d', '--name', 'cat-vm', '--image', 'tiny']);
    assert.equal(json<{ kernel: string }>(['vm', 'show', 'cat-vm']).kernel, 'hostelf');
    const r = ok(['vm', 'exec', 'cat-vm', '--', 'sh', '-c', 'uname -r; echo promoted-marker > /etc/marker']);
    assert.equal(r.stdout.trim(), host.version);
    const again = banger(['kernel', 'pull', 'hostelf']);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /hint: pull it again with: banger kernel pull hostelf --force/);
    assert.equal(json<{ id: string }>(['kernel', 'pull', 'hostelf', '--force']).id, 'hostelf');
    const rm = banger(['kernel', 'rm', 'hostelf']);
    assert.notEqual(rm.code, 0);
    assert.match(rm.stderr, /used by image tiny, VM cat-vm/);
  });

  test('image promote makes a stopped VM\'s root file system an image that boots with what was written', () => {
    const running = banger(['image', 'promote', 'cat-vm', 'tiny2']);
    assert.notEqual(running.code, 0);
    assert.match(running.stderr, /hint: stop it first: banger vm stop cat-vm/);
    ok(['vm', 'stop', 'cat-vm']);
    ok(['image', 'promote', 'cat-vm', 'tiny2']);
    ok(['vm', 'delete', 'cat-vm']);
    const r = ok(['vm', 'run', '--rm', '--image', 'tiny2', '--', 'cat', '/etc/marker']);
    assert.equal(r.stdout.trim(), 'promoted-marker');
    // A promoted image can be published in turn.
    const out = path.join(WORK, 'tiny2.tar.zst');
    const made = json<{ path: string; sha256: string; kernelRef: string | null }>(['image', 'make-bundle', '--from-image', 'tiny2', '--out', out]);
    assert.equal(made.sha256, createHash('sha256').update(fs.readFileSync(out)).digest('hex'));
    assert.equal(made.kernelRef, 'hostelf');
  });

  test('make-bundle reads the rootfs tar from stdin with --rootfs-tar -', async () => {
    const out = path.join(WORK, 'stdin.tar.zst');
    const r = spawnSync(BANGER, ['image', 'make-bundle', '--rootfs-tar', '-', '--name', 'fromstdin', '--out', out, '--json'], { env: ENV, input: await busyboxRootfsLayer(), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { size: number }).size, fs.statSync(out).size);
  });

  test('image register takes a rootfs with a kernel file and its own initrd, and refuses both kernel forms at once', () => {
    const both = banger(['image', 'register', 'x', '--rootfs', '/nonexistent', '--kernel-ref', 'hostelf', '--kernel', host.vmlinuz, '--initrd', '/boot/x']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exclude each other/);
    const rootfs = json<{ path: string }>(['image', 'show', 'tiny']).path;
    // An initrd of the kind a distribution builds for a VM: the guest's modules under the merged-/usr path with
    // modules.dep (Debian's own lacks virtio_console, which the agent's channel needs).
    const initrd = path.join(WORK, 'initrd.img');
    const dep = fs.readFileSync(path.join(host.modulesDir, 'modules.dep'), 'utf8');
    const builtin = fs.readFileSync(path.join(host.modulesDir, 'modules.builtin'), 'utf8');
    const files = resolveModules(dep, new Set(builtin.split('\n').filter(Boolean).map(moduleName)), GUEST_MODULES);
    const base = `usr/lib/modules/${host.version}`;
    const dirs = new Set<string>();
    for (const f of [...files.map((x) => `${base}/${x}`), `${base}/modules.dep`]) {
      for (let d = path.dirname(f); d !== '.'; d = path.dirname(d)) dirs.add(d);
    }
    fs.writeFileSync(initrd, gzipSync(writeCpio([
      ...[...dirs].sort().map((d) => ({ path: d, mode: S_IFDIR | 0o755 })),
      ...files.map((f) => ({ path: `${base}/${f}`, mode: S_IFREG | 0o644, data: fs.readFileSync(path.join(host.modulesDir, f)) })),
      { path: `${base}/modules.dep`, mode: S_IFREG | 0o644, data: Buffer.from(dep) },
      { path: `${base}/modules.builtin`, mode: S_IFREG | 0o644, data: Buffer.from(builtin) },
    ])));
    ok(['image', 'register', 'reg', '--rootfs', rootfs, '--kernel', host.vmlinuz, '--initrd', initrd]);
    const r = ok(['vm', 'run', '--rm', '--image', 'reg', '--', 'uname', '-r']);
    assert.equal(r.stdout.trim(), host.version);
    assert.equal(json<{ format: string }>(['kernel', 'show', 'reg-kernel']).format, 'bzimage');
    assert.equal(ENV.BANGER_HOME, HOME);
  });

  test('kernel import finds a kernel and its modules in a directory; an image registered with --kernel-ref boots it', () => {
    const dir = path.join(WORK, 'import');
    fs.mkdirSync(path.join(dir, 'lib', 'modules'), { recursive: true });
    fs.copyFileSync(host.vmlinuz, path.join(dir, path.basename(host.vmlinuz)));
    fs.cpSync(path.join(WORK, 'kernel', 'modules'), path.join(dir, 'lib', 'modules', host.version), { recursive: true });
    const imported = json<{ id: string; format: string; version: string }>(['kernel', 'import', 'hostdir', '--from', dir]);
    assert.deepEqual([imported.id, imported.format, imported.version], ['hostdir', 'bzimage', host.version]);
    const rootfs = json<{ path: string }>(['image', 'show', 'tiny']).path;
    ok(['image', 'register', 'reg2', '--rootfs', rootfs, '--kernel-ref', 'hostdir']);
    assert.equal(ok(['vm', 'run', '--rm', '--image', 'reg2', '--', 'uname', '-r']).stdout.trim(), host.version);
    const names = json<Array<{ id: string }>>(['kernel', 'list']).map((k) => k.id).sort();
    assert.ok(['hostdir', 'hostelf', 'reg-kernel'].every((n) => names.includes(n)), names.join(', '));
    ok(['image', 'delete', 'reg2']);
    ok(['kernel', 'rm', 'hostdir']);
  });
});
