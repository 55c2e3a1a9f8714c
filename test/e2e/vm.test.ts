// End to end: the real CLI, daemon, helper, QEMU, Debian image and kernel. Every bridge, tap and VMM lives
// in a network namespace this test creates and deletes, and all state in a fresh BANGER_HOME.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BANGER, e2eBanger } from './e2e-banger.ts';

const NETNS = `banger-e2e-${process.pid}`;
const { home: HOME, env: ENV, banger, ok, vmmProcesses, teardown } = e2eBanger('banger-e2e-', NETNS);

/** Deletes a VM a failed test may have left, so one failure does not cascade into the next tests. */
function cleanup(name: string): void {
  if (vms().some((vm) => vm.name === name)) banger(['vm', 'delete', name]);
}

function vms(): Array<{ name: string; state: string; id: string; tap: string }> {
  return JSON.parse(ok(['vm', 'list', '--all', '--json']).stdout) as Array<{ name: string; state: string; id: string; tap: string }>;
}

function taps(): string[] {
  const r = spawnSync('ip', ['-n', NETNS, '-o', 'link', 'show'], { encoding: 'utf8' });
  return r.stdout.split('\n').map((l) => l.split(': ')[1]?.split('@')[0] ?? '').filter((n) => n.startsWith('bgt'));
}

/** ssh processes (shared connections included) that belong to this test's BANGER_HOME. */
function sshProcesses(): string[] {
  const r = spawnSync('pgrep', ['-a', '-f', `ssh .*${HOME}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

function vmDirs(): string[] {
  try {
    return fs.readdirSync(path.join(HOME, 'state/vms'));
  } catch {
    return [];
  }
}

/** A git repository with a tool pin (mise.toml), an executable script, in its own directory the test removes. */
function makeRepo(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(path.dirname(HOME), 'banger-e2e-repo-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const repo = path.join(dir, 'repo');
  fs.mkdirSync(repo);
  gitIn(repo, 'init', '-q', '-b', 'main');
  fs.writeFileSync(path.join(repo, 'README'), 'hello\n');
  fs.writeFileSync(path.join(repo, 'tool.sh'), '#!/bin/sh\necho tool ran\n', { mode: 0o755 });
  // No tools listed: mise install succeeds without downloading anything (the guest reaches no real network).
  fs.writeFileSync(path.join(repo, 'mise.toml'), '[tools]\n');
  gitIn(repo, 'add', '-A');
  gitIn(repo, '-c', 'user.name=Test', '-c', 'user.email=test@example.org', 'commit', '-q', '-m', 'init');
  return repo;
}

function gitIn(dir: string, ...args: string[]): string {
  const r = spawnSync('git', ['-C', dir, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

describe('banger on a real guest', { timeout: 40 * 60_000 }, () => {
  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps, debootstrap)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
  });

  after(() => {
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  test('vm run --rm -- cat /etc/os-release boots Debian bookworm and prints the spec line first', () => {
    const r = ok(['vm', 'run', '--rm', '--', 'cat', '/etc/os-release']);
    assert.match(r.stdout, /VERSION_CODENAME=bookworm/);
    const specLine = r.stderr.split('\n').find((l) => l.includes('vCPU'));
    assert.ok(specLine, `no spec line in:\n${r.stderr}`);
    assert.match(specLine, /\d+ vCPU, \d+ MiB RAM, \d+ GiB disk, image debian-bookworm, qemu(\/(kvm|tcg) \(.+\)| \(KVM or TCG: probing)/);
    // The decision is in the spec line, or (a slow probe) on a line of its own before the boot.
    if (!/qemu\/(kvm|tcg)/.test(specLine)) assert.match(r.stderr, /^\s+[\d.]+s accel\s+qemu\/(kvm|tcg) \(.+\)$/m);
    const firstStage = r.stderr.split('\n').findIndex((l) => /^\s+[\d.]+s (disk|network|boot|ssh)/.test(l));
    assert.ok(r.stderr.split('\n').indexOf(specLine) < firstStage, 'the spec line comes before the boot stages');
    assert.deepEqual(vms(), []);
  });

  test('vm run propagates the exit status of the command', () => {
    const r = banger(['vm', 'run', '--rm', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    assert.equal(r.code, 7, r.stderr);
    assert.match(r.stdout, /^out$/m);
    assert.match(r.stderr, /^err$/m);
    assert.deepEqual(vms(), []);
  });

  test('create, ssh, daemon restart, stop, start, ssh, delete keeps /root across a restart', (t) => {
    t.after(() => cleanup('e2e-box'));
    ok(['vm', 'create', '--name', 'e2e-box']);
    assert.equal(vms()[0]?.state, 'running');
    ok(['vm', 'ssh', 'e2e-box', '--', 'sh', '-c', 'echo kept > /root/marker && findmnt -n -o SOURCE /root']);
    // The guest outlives a restart of both daemons; the next command starts them again and finds it.
    assert.match(ok(['daemon', 'stop']).stdout, /stopped bangerd and bangerd-root/);
    assert.equal(vms()[0]?.state, 'running');
    assert.equal(ok(['vm', 'ssh', 'e2e-box', '--', 'cat', '/root/marker']).stdout.trim(), 'kept');
    ok(['vm', 'stop', 'e2e-box']);
    assert.equal(vms()[0]?.state, 'stopped');
    assert.deepEqual(vmmProcesses(), [], 'no VMM after stop');
    assert.deepEqual(taps(), [], 'no tap after stop');
    ok(['vm', 'start', 'e2e-box']);
    const r = ok(['vm', 'ssh', 'e2e-box', '--', 'cat', '/root/marker']);
    assert.equal(r.stdout.trim(), 'kept');
    // The initrd names the VM on the console before it starts init, so this line is there before sshd is.
    assert.match(ok(['vm', 'logs', 'e2e-box']).stdout, /banger-init: e2e-box at /);
    const dup = banger(['vm', 'create', '--name', 'e2e-box', '--no-start']);
    assert.equal(dup.code, 4);
    assert.match(dup.stderr, /already exists/);
    ok(['vm', 'delete', 'e2e-box']);
    assert.deepEqual(vms(), []);
  });

  test('[[file_sync]] copies into a new VM on its first boot only; vm restart keeps /root', (t) => {
    // The daemon reads config.toml and the owner's home when it starts: it is restarted with both made here.
    const owner = fs.mkdtempSync(path.join(path.dirname(HOME), 'banger-e2e-owner-'));
    const configFile = path.join(HOME, 'config', 'config.toml');
    t.after(() => {
      cleanup('e2e-sync');
      fs.rmSync(configFile, { force: true });
      banger(['daemon', 'stop']);
      fs.rmSync(owner, { recursive: true, force: true });
    });
    fs.writeFileSync(path.join(owner, '.gitconfig'), '[user]\n\tname = Synced Owner\n');
    fs.mkdirSync(path.join(owner, 'dots', 'nested'), { recursive: true });
    fs.writeFileSync(path.join(owner, 'dots', 'nested', 'hello.sh'), '#!/bin/sh\necho hello\n', { mode: 0o755 });
    fs.mkdirSync(path.dirname(configFile), { recursive: true });
    fs.writeFileSync(configFile, '[[file_sync]]\nhost = "~/.gitconfig"\nguest = "~/.gitconfig"\nmode = "0644"\n\n[[file_sync]]\nhost = "~/dots"\nguest = "/root/dots"\n');
    ok(['daemon', 'stop']);
    const create = spawnSync(BANGER, ['vm', 'create', '--name', 'e2e-sync'], { env: { ...ENV, HOME: owner }, encoding: 'utf8', timeout: 15 * 60_000 });
    assert.equal(create.status, 0, create.stderr);
    const look = 'stat -c "%a %U" /root/.gitconfig /root/dots/nested/hello.sh; git config --global user.name; /root/dots/nested/hello.sh';
    assert.deepEqual(ok(['vm', 'ssh', 'e2e-sync', '--', 'sh', '-c', look]).stdout.trim().split('\n'), ['644 root', '700 root', 'Synced Owner', 'hello']);
    // Changed in the guest, then a restart: the guest's copy stays (file_sync is for the first boot only).
    ok(['vm', 'ssh', 'e2e-sync', '--', 'sh', '-c', 'git config --global user.name "Changed In Guest"']);
    ok(['vm', 'restart', 'e2e-sync']);
    assert.equal(ok(['vm', 'ssh', 'e2e-sync', '--', 'git', 'config', '--global', 'user.name']).stdout.trim(), 'Changed In Guest');
    assert.equal(vms().find((v) => v.name === 'e2e-sync')?.state, 'running');
    ok(['vm', 'delete', 'e2e-sync']);
  });

  test('a guest whose sshd does not answer in time is kept for inspection even with --rm', (t) => {
    t.after(() => cleanup('e2e-slow'));
    // sshd can answer within a second of the agent now, so it is kept from answering: the namespace drops
    // every connection to port 22 (banger's ssh runs there) until the test ends.
    const nft = (script: string): void => {
      const r = spawnSync('ip', ['netns', 'exec', NETNS, 'nft', '-f', '-'], { input: script, encoding: 'utf8' });
      assert.equal(r.status, 0, `nft: ${r.stderr}`);
    };
    nft('table inet e2e_block_ssh {\n  chain out {\n    type filter hook output priority 0;\n    tcp dport 22 drop\n  }\n}\n');
    t.after(() => nft('delete table inet e2e_block_ssh\n'));
    const r = banger(['vm', 'run', '--rm', '--name', 'e2e-slow', '--ssh-timeout', '1', '--', 'true']);
    assert.equal(r.code, 11, r.stderr);
    assert.match(r.stderr, /e2e-slow/);
    assert.match(r.stderr, /banger vm logs e2e-slow/);
    assert.equal(vms()[0]?.name, 'e2e-slow');
    ok(['vm', 'delete', 'e2e-slow']);
    assert.deepEqual(vms(), []);
  });

  test('unknown VMs get a clear error', () => {
    const r = banger(['vm', 'ssh', 'no-such-vm', '--', 'true']);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /no VM named or with id "no-such-vm"/);
    assert.match(r.stderr, /hint: see banger vm list/);
  });

  test('a missing QEMU is reported with what to install, and nothing is created', () => {
    const home = fs.mkdtempSync(path.join(path.dirname(HOME), 'banger-e2e-noqemu-'));
    const env = { ...ENV, BANGER_HOME: home };
    try {
      fs.mkdirSync(path.join(home, 'config'), { recursive: true });
      fs.writeFileSync(path.join(home, 'config/config.toml'), '[vmm]\nqemu = "qemu-system-notinstalled"\n');
      const r = spawnSync(BANGER, ['vm', 'run', '--rm', '--', 'true'], { env, encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 6, r.stderr);
      assert.match(r.stderr, /qemu-system-notinstalled is not installed/);
      assert.match(r.stderr, /hint: apt-get install qemu-system-x86/);
      const list = spawnSync(BANGER, ['vm', 'list', '--all', '--json'], { env, encoding: 'utf8' });
      assert.deepEqual(JSON.parse(list.stdout), []);
    } finally {
      spawnSync(BANGER, ['daemon', 'stop'], { env, encoding: 'utf8', timeout: 60_000 });
      fs.rmSync(home, { recursive: true, force: true });
    }
  });

  test('Ctrl-C during vm run removes the half-made VM', async (t) => {
    t.after(() => cleanup('e2e-cancel'));
    const child = spawn(BANGER, ['vm', 'run', '--rm', '--name', 'e2e-cancel', '--', 'true'], { env: ENV });
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (/ssh\s+waiting for sshd/.test(stderr)) resolve();
      });
      void exited.then(() => reject(new Error(`exited before booting:\n${stderr}`)));
    });
    child.kill('SIGINT');
    assert.equal(await exited, 130, stderr);
    assert.match(stderr, /cancel/);
    assert.deepEqual(vms(), []);
  });

  test('vm run PATH -- CMD runs in a checkout of the repo with its local changes; --dry-run and refusals create nothing', (t) => {
    const repo = makeRepo(t);
    fs.writeFileSync(path.join(repo, 'README'), 'edited, not committed\n');
    fs.writeFileSync(path.join(repo, '.env'), 'SECRET=stays-home\n');
    const dry = ok(['vm', 'run', repo, '--dry-run']);
    assert.deepEqual(dry.stdout.trim().split('\n').sort(), ['README', 'mise.toml', 'tool.sh']);
    const refused = banger(['vm', 'run', repo, '--', 'true']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /--nat/);
    assert.match(refused.stderr, /--no-bootstrap/);
    assert.deepEqual(vms(), [], 'nothing was created');
    const head = gitIn(repo, 'rev-parse', 'HEAD');
    const guest = 'pwd; cat README; git rev-parse HEAD; git status --porcelain; find . -not -uid 0 | wc -l; git config --global --get-all safe.directory; ls -a; ./tool.sh; exit 3';
    const r = banger(['vm', 'run', repo, '--rm', '--no-bootstrap', '--', 'sh', '-c', guest]);
    assert.equal(r.code, 3, r.stderr);
    const out = r.stdout.split('\n');
    assert.equal(out[0], '/root/repo');
    assert.equal(out[1], 'edited, not committed');
    assert.equal(out[2], head);
    assert.equal(out[3], ' M README', 'the uncommitted change shows as one in the guest');
    assert.equal(out[4], '0', 'every file of the checkout is root\'s');
    assert.equal(out[5], '/root/repo', 'marked safe for git');
    assert.ok(!r.stdout.includes('.env'), 'untracked files stay home');
    assert.match(r.stdout, /^tool ran$/m);
    assert.deepEqual(vms(), []);
  });

  test('-d --nat ships and bootstraps, then exec and workspace export give a patch git apply takes at the base', (t) => {
    t.after(() => cleanup('e2e-ws'));
    const repo = makeRepo(t);
    const base = gitIn(repo, 'rev-parse', 'HEAD');
    const d = ok(['vm', 'run', repo, '-d', '--nat', '--name', 'e2e-ws']);
    assert.match(d.stdout, /e2e-ws is ready/);
    assert.match(d.stderr, /mise install/);
    assert.equal(ok(['vm', 'ssh', 'e2e-ws', '--', 'sh', '-c', 'test -s /root/.cache/banger/mise-install.log && echo logged']).stdout.trim(), 'logged');
    const guestWork = [
      'set -e',
      'git rm -q tool.sh && printf "new\\n" > "committed file.txt" && git add -A && git commit -q -m "guest commit"',
      'printf "\\000\\001\\377" > blob.bin && mv README "read me ü" && chmod +x mise.toml && ln -s "read me ü" link',
    ].join('\n');
    ok(['vm', 'exec', 'e2e-ws', '--', 'sh', '-c', guestWork]);
    const patchFile = path.join(path.dirname(repo), 'changes.patch');
    ok(['vm', 'workspace', 'export', 'e2e-ws', '--output', patchFile]);
    const clone = path.join(path.dirname(repo), 'clone');
    spawnSync('git', ['clone', '-q', repo, clone]);
    gitIn(clone, 'checkout', '-q', base);
    gitIn(clone, 'apply', '--check', patchFile);
    gitIn(clone, 'apply', patchFile);
    const treeScript = 'export GIT_INDEX_FILE=$(mktemp -u) && git add -A && git ls-files -s && rm -f "$GIT_INDEX_FILE"';
    const guestTree = ok(['vm', 'exec', 'e2e-ws', '--', 'sh', '-c', treeScript]).stdout;
    const hostTree = spawnSync('sh', ['-c', treeScript], { cwd: clone, encoding: 'utf8' }).stdout;
    assert.equal(hostTree, guestTree);
    assert.match(hostTree, /^120000 .*\tlink$/m);
    assert.match(hostTree, /^100755 .*\tmise.toml$/m);

    // Into a running VM over ssh: refused over an existing checkout, shipped once it is gone.
    const again = banger(['vm', 'workspace', 'prepare', 'e2e-ws', repo, '--no-bootstrap']);
    assert.equal(again.code, 5, again.stderr);
    assert.match(again.stderr, /already has a workspace at \/root\/repo/);
    ok(['vm', 'exec', 'e2e-ws', '--', 'rm', '-rf', '/root/repo']);
    ok(['vm', 'workspace', 'prepare', 'e2e-ws', repo, '--no-bootstrap']);
    const shipped = ok(['vm', 'exec', 'e2e-ws', '--', 'sh', '-c', 'git rev-parse HEAD; git status --porcelain | wc -l; find . -not -uid 0 | wc -l']).stdout.split('\n');
    assert.deepEqual(shipped.slice(0, 3), [base, '0', '0']);
  });

  test('three VMs at once: parallel creates, vm stop a b c, vm set --disk grows /root, vm kill, vm prune -f', async (t) => {
    const names = ['e2e-a', 'e2e-b', 'e2e-c'];
    t.after(() => names.forEach(cleanup));
    const create = (name: string): Promise<number | null> => new Promise((resolve) => {
      spawn(BANGER, ['vm', 'create', '--name', name], { env: ENV, stdio: 'ignore' }).on('exit', (code) => resolve(code));
    });
    assert.deepEqual(await Promise.all(names.map(create)), [0, 0, 0]);
    // A name given twice runs once; a missing one fails alone while the others stop.
    const stop = banger(['vm', 'stop', 'e2e-a', 'e2e-b', 'no-such-vm', 'e2e-c', 'e2e-a']);
    assert.equal(stop.code, 3, stop.stderr);
    assert.match(stop.stderr, /no-such-vm/);
    assert.deepEqual(vms().map((v) => [v.name, v.state]).sort(), names.map((n) => [n, 'stopped']));
    assert.deepEqual(vmmProcesses(), []);
    ok(['vm', 'set', 'e2e-a', '--disk', '12']);
    ok(['vm', 'start', 'e2e-a']);
    // df prints a header ("1G-blocks"), then the size ("12G").
    const size = Number(/^\s*(\d+)G\s*$/m.exec(ok(['vm', 'exec', 'e2e-a', '--', 'df', '-BG', '--output=size', '/root']).stdout)?.[1]);
    assert.ok(size >= 11, `/root is ${size} GiB after vm set --disk 12`);
    ok(['vm', 'kill', 'e2e-a']);
    assert.equal(vms().find((v) => v.name === 'e2e-a')?.state, 'stopped');
    assert.deepEqual(vmmProcesses(), []);
    ok(['vm', 'prune', '-f']);
    assert.deepEqual(vms(), []);
  });

  test('nothing is left behind: no VMM or ssh process, tap or VM file', () => {
    assert.deepEqual(vmmProcesses(), []);
    assert.deepEqual(sshProcesses(), []);
    assert.deepEqual(taps(), []);
    assert.deepEqual(vmDirs(), []);
  });
});
