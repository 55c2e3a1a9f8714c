// End to end for `banger update` on real releases: scripts/release.sh builds them from this checkout, signed with
// a key made here, a static server of the test's own on 127.0.0.1 serves them, and the first one is installed
// with its install.sh under a prefix of the test's own. Its daemons run a VM (inside a network namespace the test
// creates) through a good update and a rolled-back bad one, keeping the same guest boot. Each tampered or
// oversized release, and a store the new release cannot use, must change nothing.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { signBlob } from '../../src/system/release.ts';
import { MIGRATIONS } from '../../src/store/migrations.ts';
import { startStaticServer, type StaticServer } from './static-server.ts';
import { killVmmsOf, tinyRootfs } from './tiny-image.ts';

const REPO = path.resolve(import.meta.dirname, '../..');
const NETNS = `banger-e2e-upd-${process.pid}`;
const WORK = fs.mkdtempSync(path.join(process.env.BANGER_E2E_DIR ?? '/var/tmp', 'banger-e2e-upd-'));
const SERVED = path.join(WORK, 'served');
const PREFIX = path.join(WORK, 'opt');
const BIN = path.join(WORK, 'bin');
const HOME = path.join(WORK, 'home');
const ENV = { ...process.env, BANGER_HOME: HOME, BANGER_NETNS: NETNS };
const KEY = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const OTHER_KEY = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const KEY_FILE = path.join(WORK, 'release.key');
const privatePem = (k: crypto.KeyPairKeyObjectResult): string => k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

let server: StaticServer | null = null;
let channel = '';

interface Result { code: number | null; stdout: string; stderr: string }
function banger(args: string[]): Result {
  const r = spawnSync(path.join(BIN, 'banger'), args, { env: ENV, encoding: 'utf8', timeout: 10 * 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function ok(args: string[]): Result {
  const r = banger(args);
  assert.equal(r.code, 0, `banger ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}
function release(version: string, out = SERVED): void {
  const r = spawnSync('bash', [path.join(REPO, 'scripts/release.sh'), version, '--key', KEY_FILE, '--channel', channel, '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, `release.sh ${version}: ${r.stderr}`);
}
const current = (): string => fs.readlinkSync(path.join(PREFIX, 'current'));
const versions = (): string[] => fs.readdirSync(path.join(PREFIX, 'versions')).sort();
const leftovers = (): string[] => fs.readdirSync(PREFIX).filter((n) => n.startsWith('.update-'));
const daemonPid = (): number => (JSON.parse(ok(['daemon', 'status', '--json']).stdout) as { pid: number }).pid;
const bootId = (): string => ok(['vm', 'exec', 'keep', '--', 'cat', '/proc/sys/kernel/random/boot_id']).stdout.trim();
const manifest = (): { schema: number; releases: Array<Record<string, unknown> & { version: string; size: number }> } =>
  JSON.parse(fs.readFileSync(path.join(SERVED, 'manifest.json'), 'utf8'));

/** Serves `releases` (edited copies of the real manifest's entries) as `name`; the URL to pass as --manifest-url. */
function variant(name: string, body: unknown): string {
  fs.writeFileSync(path.join(SERVED, name), typeof body === 'string' ? body : JSON.stringify(body));
  return `${server!.origin}/${name}`;
}

/** A copy of release `version`'s files under `dir`, for a variant to tamper with. */
function copyRelease(version: string, dir: string): { tarball: string; sums: string; sig: string; entry: Record<string, unknown> & { size: number } } {
  fs.cpSync(path.join(SERVED, version), path.join(SERVED, dir), { recursive: true });
  const entry = manifest().releases.find((r) => r.version === version)!;
  const rebase = (p: unknown): string => `${dir}/${path.basename(String(p))}`;
  return {
    tarball: path.join(SERVED, rebase(entry.tarball)), sums: path.join(SERVED, dir, 'SHA256SUMS'), sig: path.join(SERVED, dir, 'SHA256SUMS.sig'),
    entry: { ...entry, tarball: rebase(entry.tarball), sha256sums: rebase(entry.sha256sums), signature: rebase(entry.signature) },
  };
}

/** A refused update: its exit status and message, and nothing changed (release, daemon, work directories). */
function refused(args: string[], code: number, message: RegExp): void {
  const before = { current: current(), versions: versions(), pid: daemonPid() };
  const r = banger(['update', ...args]);
  assert.equal(r.code, code, `update ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, message);
  assert.match(r.stderr, /hint: /);
  assert.deepEqual({ current: current(), versions: versions(), pid: daemonPid() }, before);
  assert.deepEqual(leftovers(), []);
}

describe('banger update', { timeout: 30 * 60_000 }, () => {
  before(async () => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
    fs.mkdirSync(SERVED);
    fs.writeFileSync(KEY_FILE, privatePem(KEY), { mode: 0o600 });
    server = await startStaticServer(SERVED);
    channel = `${server.origin}/manifest.json`;
    release('1.0.0');
    // Installed as a user would: the tarball unpacked, then its install.sh.
    const unpack = path.join(WORK, 'unpack');
    fs.mkdirSync(unpack);
    assert.equal(spawnSync('tar', ['--zstd', '-xf', path.join(SERVED, '1.0.0', 'banger-1.0.0-linux-x64.tar.zst'), '-C', unpack]).status, 0);
    const installed = spawnSync('sh', [path.join(unpack, 'banger-1.0.0', 'install.sh'), '--prefix', PREFIX, '--bin-dir', BIN], { encoding: 'utf8' });
    assert.equal(installed.status, 0, installed.stderr);
    fs.rmSync(unpack, { recursive: true });
    fs.mkdirSync(path.join(HOME, 'config'), { recursive: true });
    fs.writeFileSync(path.join(HOME, 'config', 'config.toml'), '[dns]\nport = 0\n');
    // A VM that must live through what follows: a busybox root file system booted with banger's agent as init.
    ok(['image', 'register', 'tiny', '--rootfs', tinyRootfs(WORK)]);
    ok(['vm', 'create', '--image', 'tiny', '--name', 'keep']);
  });

  after(() => {
    spawnSync(path.join(BIN, 'banger'), ['daemon', 'stop'], { env: ENV });
    killVmmsOf(HOME);
    spawnSync('ip', ['netns', 'del', NETNS]);
    server?.stop();
    if (!process.env.BANGER_E2E_KEEP) fs.rmSync(WORK, { recursive: true, force: true });
  });

  test('the installed release runs, and is up to date while it is the newest', () => {
    assert.equal(current(), 'versions/1.0.0');
    assert.match(ok(['version']).stdout, /^banger 1\.0\.0$/m);
    assert.match(ok(['update', '--check']).stdout, /banger 1\.0\.0 is up to date/);
    assert.match(ok(['update']).stdout, /banger 1\.0\.0 is up to date/);
  });

  test('--check says an update is out; --to an unknown version says which there are', () => {
    release('1.1.0');
    assert.deepEqual(JSON.parse(ok(['update', '--check', '--json']).stdout), { current: '1.0.0', latest: '1.1.0', updateAvailable: true });
    refused(['--to', '9.9.9'], 2, /there is no release 9\.9\.9[\s\S]*hint: releases: 1\.0\.0, 1\.1\.0/);
  });

  test('--dry-run downloads and verifies, checks the store, and changes nothing', () => {
    const before = { current: current(), versions: versions(), pid: daemonPid() };
    const r = ok(['update', '--dry-run']);
    assert.match(r.stdout, /dry run: banger 1\.1\.0 verified; .*Nothing was changed/);
    assert.deepEqual({ current: current(), versions: versions(), pid: daemonPid() }, before);
    assert.deepEqual(leftovers(), []);
  });

  test('a tampered SHA256SUMS, a tampered signature and a signature by another key are refused', () => {
    const sums = copyRelease('1.1.0', 't-sums');
    const text = fs.readFileSync(sums.sums, 'utf8');
    fs.writeFileSync(sums.sums, `${text[0] === '0' ? '1' : '0'}${text.slice(1)}`);
    refused(['--manifest-url', variant('m-sums.json', { schema: 1, releases: [sums.entry] })], 21, /signature of banger 1\.1\.0's SHA256SUMS does not verify/);

    const sig = copyRelease('1.1.0', 't-sig');
    fs.writeFileSync(sig.sig, signBlob(Buffer.from('something else'), privatePem(KEY)));
    refused(['--manifest-url', variant('m-sig.json', { schema: 1, releases: [sig.entry] })], 21, /does not verify/);

    const other = copyRelease('1.1.0', 't-key');
    fs.writeFileSync(other.sig, signBlob(fs.readFileSync(other.sums), privatePem(OTHER_KEY)));
    refused(['--manifest-url', variant('m-key.json', { schema: 1, releases: [other.entry] })], 21, /does not verify with the release key built into this banger/);
  });

  test('a tampered tarball, and bodies over their caps, are refused before anything is unpacked', () => {
    const t = copyRelease('1.1.0', 't-tar');
    const fd = fs.openSync(t.tarball, 'r+');
    fs.writeSync(fd, Buffer.from([0x42]), 0, 1, 1000);
    fs.closeSync(fd);
    refused(['--manifest-url', variant('m-tar.json', { schema: 1, releases: [t.entry] })], 21, /its sha256 is [0-9a-f]{64}, not [0-9a-f]{64} as the signed SHA256SUMS says/);

    const small = copyRelease('1.1.0', 't-size');
    refused(['--manifest-url', variant('m-size.json', { schema: 1, releases: [{ ...small.entry, size: 1000 }] })], 21, /longer than the 1000 allowed/);
    refused(['--manifest-url', variant('m-huge.json', `{"schema":1,"releases":[],"pad":"${'x'.repeat(1024 * 1024)}"}`)], 21, /longer than the 1048576 allowed/);
  });

  test('a manifest of a newer schema is refused with what to do instead', () => {
    refused(['--manifest-url', variant('m-schema.json', { schema: 2, releases: [] })], 21, /schema 2, newer than this banger reads \(1\)[\s\S]*hint: a newer banger is needed/);
  });

  test('a store the new release cannot use stops the update before it changes anything', () => {
    const db = new DatabaseSync(path.join(HOME, 'state', 'banger.db'));
    try {
      db.exec(`PRAGMA user_version = ${MIGRATIONS.length + 5}`);
      refused([], 22, /banger 1\.1\.0 cannot use this store: .*newer than this banger knows.*nothing was changed/);
    } finally {
      db.exec(`PRAGMA user_version = ${MIGRATIONS.length}`);
      db.close();
    }
  });

  test('an update waits for no one: a session into a guest makes it refuse, unless --force', async () => {
    const session = spawn(path.join(BIN, 'banger'), ['vm', 'exec', 'keep', '--', 'busybox', 'sleep', '600'], { env: ENV, stdio: 'ignore' });
    try {
      // Until bangerd counts the session (the exec has to connect first).
      for (let i = 0; (JSON.parse(ok(['daemon', 'status', '--json']).stdout) as { sessions: number }).sessions === 0; i++) {
        assert.ok(i < 200 && session.exitCode === null, 'the vm exec session never showed in daemon status');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      refused([], 5, /bangerd is busy: 1 session\(s\) into guests[\s\S]*hint: let them finish .* --force/);
      assert.match(ok(['update', '--dry-run', '--force']).stdout, /dry run: banger 1\.1\.0 verified/);
    } finally {
      session.kill('SIGKILL');
    }
  });

  test('an update swaps the release and restarts the daemons; the running VM keeps its boot', () => {
    const boot = bootId();
    const r = ok(['update']);
    assert.match(r.stdout, /updated banger 1\.0\.0 → 1\.1\.0/);
    assert.equal(current(), 'versions/1.1.0');
    assert.equal(fs.readlinkSync(path.join(PREFIX, 'previous')), 'versions/1.0.0');
    assert.match(ok(['version']).stdout, /^banger 1\.1\.0$[\s\S]*^bangerd 1\.1\.0/m);
    assert.equal(bootId(), boot);
    assert.deepEqual(leftovers(), []);
  });

  test('a release whose daemon does not start is rolled back, and the VM keeps its boot', () => {
    // A signed release whose bangerd fails at once: release 1.2.0 with bin/bangerd replaced, packed and signed again.
    const scratch = path.join(WORK, 'broken');
    release('1.2.0', scratch);
    const dir = path.join(scratch, '1.2.0');
    const name = 'banger-1.2.0-linux-x64.tar.zst';
    assert.equal(spawnSync('tar', ['--zstd', '-xf', path.join(dir, name), '-C', dir]).status, 0);
    fs.writeFileSync(path.join(dir, 'banger-1.2.0', 'bin', 'bangerd'), '#!/bin/sh\necho "bangerd: this release is broken on purpose" >&2\nexit 1\n', { mode: 0o755 });
    fs.rmSync(path.join(dir, name));
    assert.equal(spawnSync('tar', ['-C', dir, '-I', 'zstd -q', '-cf', path.join(dir, name), 'banger-1.2.0']).status, 0);
    fs.mkdirSync(path.join(SERVED, '1.2.0'));
    fs.copyFileSync(path.join(dir, name), path.join(SERVED, '1.2.0', name));
    const sums = Buffer.from(`${crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest('hex')}  ${name}\n`);
    fs.writeFileSync(path.join(SERVED, '1.2.0', 'SHA256SUMS'), sums);
    fs.writeFileSync(path.join(SERVED, '1.2.0', 'SHA256SUMS.sig'), signBlob(sums, privatePem(KEY)));
    const m = manifest();
    m.releases.push({ version: '1.2.0', channel: 'stable', tarball: `1.2.0/${name}`, size: fs.statSync(path.join(dir, name)).size, sha256sums: '1.2.0/SHA256SUMS', signature: '1.2.0/SHA256SUMS.sig' });
    fs.writeFileSync(path.join(SERVED, 'manifest.json'), JSON.stringify(m));

    const boot = bootId();
    const r = banger(['update']);
    assert.equal(r.code, 22, r.stderr);
    assert.match(r.stderr, /banger 1\.2\.0 failed after the swap and was rolled back to 1\.1\.0/);
    assert.match(r.stderr, /this release is broken on purpose/);
    assert.equal(current(), 'versions/1.1.0');
    assert.equal(fs.readlinkSync(path.join(PREFIX, 'previous')), 'versions/1.0.0');
    assert.deepEqual(versions(), ['1.0.0', '1.1.0']);
    assert.deepEqual(leftovers(), []);
    assert.match(ok(['version']).stdout, /^bangerd 1\.1\.0/m);
    assert.equal(bootId(), boot);
  });
});
