// bangerd-root itself, started as root for an unprivileged owner: what it creates in the owner's directories
// belongs to the owner, and it refuses directories that are not the owner's.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HelperClient } from '../../src/daemon/helper-client.ts';

const NOBODY = { uid: 65534, gid: 65534 };
const BIN = fileURLToPath(new URL('../../bin/bangerd-root', import.meta.url));

function argsFor(home: string, extra: string[] = []): string[] {
  return [
    '--owner', `${NOBODY.uid}:${NOBODY.gid}`, '--state-dir', path.join(home, 'state'), '--cache-dir', path.join(home, 'cache'),
    '--socket', path.join(home, 'run', 'bangerd-root.sock'), '--pid-file', path.join(home, 'run', 'bangerd-root.pid'),
    '--bridge', 'bgtest0', '--subnet', '172.31.9.0/24', ...extra,
  ];
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('bangerd-root serving an unprivileged owner', () => {
  let base: string;
  let home: string;
  let victim: string;

  before(() => {
    base = fs.mkdtempSync('/var/tmp/banger-helper-main-');
    fs.chmodSync(base, 0o755);
    home = path.join(base, 'home');
    fs.mkdirSync(path.join(home, 'run'), { recursive: true });
    spawnSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, home]);
    victim = path.join(base, 'victim');
    fs.writeFileSync(victim, 'root file\n', { mode: 0o644 });
    // The owner's trick: the pid file is a symlink to a file only root may write.
    fs.symlinkSync(victim, path.join(home, 'run', 'bangerd-root.pid'));
    spawnSync('chown', ['-h', `${NOBODY.uid}:${NOBODY.gid}`, path.join(home, 'run', 'bangerd-root.pid')]);
  });
  after(() => fs.rmSync(base, { recursive: true, force: true }));

  it("creates its directories, socket and pid file as the owner's, and leaves root's files alone", async () => {
    const child = spawn(BIN, argsFor(home), { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      const socket = path.join(home, 'run', 'bangerd-root.sock');
      const pidFile = path.join(home, 'run', 'bangerd-root.pid');
      // The pid file is written last, once the socket is set up (until then it is still the owner's symlink).
      const written = (): boolean => {
        try {
          return fs.lstatSync(pidFile).isFile() && fs.readFileSync(pidFile, 'utf8').endsWith('\n');
        } catch {
          return false;
        }
      };
      await waitFor(() => written() || child.exitCode !== null, `the pid file (stderr: ${stderr})`);
      const st = fs.statSync(socket);
      assert.equal(st.uid, NOBODY.uid);
      assert.equal(st.mode & 0o777, 0o600);
      for (const dir of ['state', 'cache']) assert.equal(fs.statSync(path.join(home, dir)).uid, NOBODY.uid);
      assert.equal(fs.lstatSync(pidFile).isFile(), true);
      assert.equal(fs.statSync(pidFile).uid, NOBODY.uid);
      assert.equal(fs.readFileSync(pidFile, 'utf8'), `${child.pid}\n`);
      assert.equal(fs.readFileSync(victim, 'utf8'), 'root file\n');

      const helper = new HelperClient(socket);
      const pong = await helper.ping();
      assert.deepEqual(pong.network, { bridge: 'bgtest0', subnet: '172.31.9.0/24', netns: null });
      await helper.shutdown();
      helper.close();
      assert.equal(await exited, 0);
      assert.equal(fs.existsSync(pidFile), false);
    } finally {
      child.kill();
    }
  });

  it('refuses a state directory that is not the owner’s', () => {
    const rootsDir = path.join(base, 'roots-state');
    fs.mkdirSync(rootsDir, { mode: 0o755 });
    const args = argsFor(home);
    args[args.indexOf('--state-dir') + 1] = rootsDir;
    const r = spawnSync(BIN, args, { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /must be a directory owned by uid 65534/);
  });

  it('refuses bad network settings and missing arguments with its usage', () => {
    const bad = spawnSync(BIN, argsFor(home).map((a) => (a === '172.31.9.0/24' ? '172.31.9.0/16' : a)), { encoding: 'utf8', timeout: 30_000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /must be an IPv4 \/24/);
    const missing = spawnSync(BIN, ['--owner', '0:0'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /usage: bangerd-root .*--bridge NAME --subnet/);
  });
});
