// End to end for OCI images: a real registry (Debian's docker-registry) on 127.0.0.1, images built and pushed
// by the test, `banger image pull` through the daemons, and guests booted from them: busybox with no init and
// no sshd (banger's agent is PID 1), layers with whiteouts and an opaque directory, the image config's Env,
// WorkingDir and User. Guests live in a network namespace this test creates and deletes; the registry listens
// on loopback only, and only bangerd (on the host) talks to it.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER, e2eBanger } from './e2e-banger.ts';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';

const execFileAsync = promisify(execFile);
import { REGISTRY_PASSWORD, REGISTRY_USER, startRegistry, type TestRegistry } from './oci-registry-fixture.ts';
import { BUSYBOX_ROOTFS, busyboxRootfsLayer, CONFIG_IMAGE, LAYERED_RESULT, pushImage, pushStandardImages, pushWithSkopeo, type StandardImages } from './oci-test-images.ts';
import { freePort } from '../fakes/free-port.ts';

const NETNS = `banger-e2e-oci-${process.pid}`;
const { home: HOME, env: ENV, banger, ok, teardown, vmmProcesses } = e2eBanger('banger-e2e-oci-', NETNS);

let registry: TestRegistry;
let authRegistry: TestRegistry;
let tokenRegistry: TestRegistry;
let images: StandardImages;

interface Image { name: string; boot: string; hasSshd: boolean; ref: string | null; run: { env: string[]; workingDir: string | null; uid: number; gid: number } | null; sizeBytes: number }

function json<T>(args: string[]): T {
  return JSON.parse(ok([...args, '--json']).stdout) as T;
}

describe('OCI images from a real registry', { timeout: 30 * 60_000 }, () => {
  before(async () => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
    registry = await startRegistry();
    authRegistry = await startRegistry({ auth: 'basic' });
    images = await pushStandardImages(registry);
    await pushStandardImages(authRegistry);
    tokenRegistry = await startRegistry({ auth: 'token' });
    await pushImage(tokenRegistry, 'private/busybox', 'latest', { layers: [await busyboxRootfsLayer()], config: { Cmd: ['/bin/sh'] } });
    // bangerd reads docker's credentials as docker does; it starts with this environment.
    const dockerConfig = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-e2e-docker-'));
    const auth = Buffer.from(`${REGISTRY_USER}:${REGISTRY_PASSWORD}`).toString('base64');
    fs.writeFileSync(path.join(dockerConfig, 'config.json'), JSON.stringify({ auths: { [authRegistry.host]: { auth }, [tokenRegistry.host]: { auth } } }));
    ENV.DOCKER_CONFIG = dockerConfig;
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), `[dns]\nport = ${await freePort()}\n`);
  });

  after(async () => {
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
    await registry?.stop();
    await authRegistry?.stop();
    await tokenRegistry?.stop();
    if (ENV.DOCKER_CONFIG) fs.rmSync(ENV.DOCKER_CONFIG, { recursive: true, force: true });
  });

  test('a layer whose bytes were changed in the registry fails the pull and registers nothing (first: nothing is cached yet)', () => {
    const digest = images.busybox.layers[0]!.digest;
    const file = registry.blobDataPath(digest);
    const original = fs.readFileSync(file);
    const bytes = Buffer.from(original);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 10) ^ 0xff, bytes.length - 10);
    fs.writeFileSync(file, bytes);
    let r;
    try {
      r = banger(['image', 'pull', registry.ref('test/busybox')]);
    } finally {
      // The same layer is in other images the later tests pull.
      fs.writeFileSync(file, original);
    }
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /hash to sha256:/);
    assert.equal(json<Image[]>(['image', 'list']).some((i) => i.name === 'busybox'), false);
    const cache = json<Array<{ digest: string }>>(['image', 'cache', 'list']);
    assert.equal(cache.some((b) => b.digest === digest), false, 'no unverified blob is cached');
  });

  test('image pull makes a layered image: whiteouts, the opaque directory, gzip and zstd alike', () => {
    const pulled = ok(['image', 'pull', registry.ref('test/layered')]);
    assert.match(pulled.stdout, /^layered: .*boots with banger's agent as init, no sshd/m);
    assert.match(pulled.stderr, /downloading/);
    const zstd = json<{ image: Image }>(['image', 'pull', registry.ref('test/zstd')]);
    assert.equal(zstd.image.boot, 'agent');
    const list = json<Image[]>(['image', 'list']);
    assert.deepEqual(list.map((i) => i.name).sort(), ['layered', 'zstd']);
    const again = json<{ upToDate: boolean; downloadedBytes: number }>(['image', 'pull', registry.ref('test/layered')]);
    assert.deepEqual([again.upToDate, again.downloadedBytes], [true, 0]);
  });

  test('an image with no init and no sshd boots, and runs a command with its Env, WorkingDir and User', () => {
    const r = ok(['vm', 'run', '--rm', '--image', registry.ref('test/config'), '--', 'sh', '-c', 'echo "$FOO"; pwd; id -u; id -g; [ -e /.dockerenv ] || echo no-dockerenv']);
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'bar', CONFIG_IMAGE.WorkingDir, String(BUSYBOX_ROOTFS.user.uid), String(BUSYBOX_ROOTFS.user.gid), 'no-dockerenv',
    ]);
    assert.equal(json<unknown[]>(['vm', 'list', '--all']).length, 0, '--rm removed the VM');
  });

  test('vm run PATH ships a checkout into such an image and runs the command in it, through the agent', () => {
    const repo = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-e2e-oci-repo-'));
    try {
      const git = (...args: string[]) => spawnSync('git', ['-C', repo, '-c', 'user.name=T', '-c', 'user.email=t@example.org', ...args], { encoding: 'utf8' });
      git('init', '-q');
      fs.writeFileSync(path.join(repo, 'hello.txt'), 'shipped\n');
      git('add', '-A');
      git('commit', '-q', '-m', 'init');
      const r = ok(['vm', 'run', '--rm', repo, '--image', registry.ref('test/busybox'), '--', 'sh', '-c', 'pwd; cat hello.txt; stat -c %u hello.txt']);
      assert.deepEqual(r.stdout.trim().split('\n'), ['/root/repo', 'shipped', '0']);
    } finally {
      fs.rmSync(repo, { recursive: true, force: true });
    }
  });

  test("a kept VM of such an image: whiteouts seen in the guest, vm exec works, vm ssh says why it cannot, image delete names the VM", () => {
    const name = 'oci-kept';
    ok(['vm', 'run', '-d', '--name', name, '--image', 'layered']);
    try {
      const ls = ok(['vm', 'exec', name, '--', 'sh', '-c', 'ls /opt; echo --; ls /var/keep; echo --; cat /proc/1/comm']);
      assert.deepEqual(ls.stdout.trim().split('\n'), [...LAYERED_RESULT.optEntries, '--', ...LAYERED_RESULT.varKeepEntries, '--', 'banger-agent']);
      const setuid = ok(['vm', 'exec', name, '--', 'stat', '-c', '%a %u', BUSYBOX_ROOTFS.setuidFile]);
      assert.equal(setuid.stdout.trim(), '4755 0');
      const ssh = banger(['vm', 'ssh', name, '--', 'true']);
      assert.notEqual(ssh.code, 0);
      assert.match(ssh.stderr, /has no sshd/);
      assert.match(ssh.stderr, /hint: run commands through its agent: banger vm exec oci-kept -- CMD/);
      const del = banger(['image', 'delete', 'layered']);
      assert.notEqual(del.code, 0);
      assert.match(del.stderr, /used by VM oci-kept/);
    } finally {
      ok(['vm', 'delete', name]);
    }
    assert.deepEqual(vmmProcesses(), []);
    ok(['image', 'delete', 'layered']);
    // The config and busybox images were pulled by vm run --image REF above.
    assert.deepEqual(json<Image[]>(['image', 'list']).map((i) => i.name), ['busybox', 'config', 'zstd']);
  });

  test('manifest lists resolve to linux/amd64, Docker media types work, and a list without amd64 is refused', () => {
    const multi = json<{ image: Image }>(['image', 'pull', registry.ref('test/multi')]);
    assert.equal(multi.image.name, 'multi');
    json<{ image: Image }>(['image', 'pull', registry.ref('test/dockerlist'), '--name', 'dl']);
    json<{ image: Image }>(['image', 'pull', registry.ref('test/docker')]);
    const none = banger(['image', 'pull', registry.ref('test/noamd64')]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /has no linux\/amd64 image \(it has linux\/arm64, linux\/s390x\)/);
    // Served only through the list, and booted.
    assert.equal(ok(['vm', 'run', '--rm', '--image', 'multi', '--', 'cat', '/etc/issue']).stdout, 'banger test image\n');
  });

  test('an image packed by umoci and pushed by skopeo pulls and boots', async () => {
    const { ref } = await pushWithSkopeo(registry, 'test/skopeo', 'latest');
    const pulled = json<{ image: Image }>(['image', 'pull', ref]);
    assert.equal(pulled.image.name, 'skopeo');
    assert.equal(ok(['vm', 'run', '--rm', '--image', 'skopeo', '--', 'ls', '/bin/busybox']).stdout.trim(), '/bin/busybox');
  });

  test('registries with basic and with bearer-token auth are pulled with the credentials docker keeps', async () => {
    const r = json<{ image: Image }>(['image', 'pull', authRegistry.ref('test/busybox'), '--name', 'private']);
    assert.equal(r.image.name, 'private');
    // Bearer tokens: the registry's challenge names the token server, which gets the same credentials. The token
    // server runs in this process, so the CLI runs without blocking it.
    const pulled = await execFileAsync(BANGER, ['image', 'pull', tokenRegistry.ref('private/busybox'), '--name', 'tokened', '--json'], { env: ENV, encoding: 'utf8' });
    assert.equal((JSON.parse(pulled.stdout) as { image: Image }).image.name, 'tokened');
    assert.ok(tokenRegistry.tokenRequests.some((q) => q.as === 'banger' && q.scopes.some((s) => /private\/busybox:pull/.test(s))), JSON.stringify(tokenRegistry.tokenRequests));
    // The layers only the deleted image had are what a prune removes.
    const orphans = json<Array<{ images: string[] }>>(['image', 'cache', 'list']).filter((b) => b.images.length === 0).length;
    assert.ok(orphans > 0);
    assert.equal(json<{ removed: number }>(['image', 'cache', 'prune']).removed, orphans);
    assert.ok(json<Array<{ images: string[] }>>(['image', 'cache', 'list']).every((b) => b.images.length > 0));
  });
});
