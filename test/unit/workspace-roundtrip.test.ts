// Workspaces against real git and tar, with the host standing in for the guest: the guest scripts run under sh
// in a scratch directory instead of over ssh. What this proves: the shipped checkout is a real repository at the
// host's HEAD with its local changes, and an export applies with `git apply` on a clone at the base to give
// exactly the guest's tree. What it does not: ssh, the guest's own git (same Debian 12 version as the host).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ProgressEvent } from '../../src/protocol/jsonrpc.ts';
import type { SshTarget } from '../../src/protocol/methods.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { planWorkspace } from '../../src/system/workspace-plan.ts';
import { GUEST_SEEDED_SCRIPT, shipWorkspace, stageWorkspace } from '../../src/daemon/services/workspace-ship.ts';
import type { WorkspacePlan } from '../../src/system/workspace-plan.ts';
import { GUEST_EXPORT_SCRIPT } from '../../src/daemon/services/workspace-service.ts';
import { fails } from '../fakes/expect-error.ts';

const runner = new NodeProcessRunner();
const TARGET: SshTarget = { vmId: 'x', name: 'box', ip: '0.0.0.0', user: 'root', keyPath: 'k', knownHostsPath: 'h', hostKeyAlias: 'a', netns: null, workdir: '/root' };
const local = (command: string[]) => ({ command: command[0]!, args: command.slice(1) });

let dir: string;
const env = (): NodeJS.ProcessEnv => ({
  ...process.env, GIT_CONFIG_GLOBAL: path.join(dir, 'gitconfig'), GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
});

function sh(cwd: string, script: string, ...args: string[]): string {
  const r = spawnSync('bash', ['-c', script, 'test', ...args], { cwd, env: env(), encoding: 'utf8' });
  assert.equal(r.status, 0, `${script}\n${r.stderr}`);
  return r.stdout;
}

/** Every path with its mode and content hash (symlinks as links), as git would record the tree. */
function treeOf(repo: string): string {
  return sh(repo, 'export GIT_INDEX_FILE=$(mktemp -u) && git add -A && git ls-files -s -z | tr "\\0" "\\n"; rm -f "$GIT_INDEX_FILE"');
}

/** A repository with the names and kinds of files that break naive shipping. */
function hostileRepo(root: string): void {
  fs.mkdirSync(root, { recursive: true });
  sh(root, 'git init -q -b main . && git config user.name "Repo Owner" && git config user.email owner@example.org');
  fs.writeFileSync(path.join(root, 'README'), 'hello\n');
  fs.writeFileSync(path.join(root, '-dash.txt'), 'a name that looks like an option\n');
  fs.writeFileSync(path.join(root, 'with space é.txt'), 'non-ASCII and a space\n');
  fs.writeFileSync(path.join(root, 'new\nline'), 'a newline in the name\n');
  fs.writeFileSync(path.join(root, 'run.sh'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
  fs.writeFileSync(path.join(root, 'blob.bin'), Buffer.from([0, 1, 2, 255, 254, 0, 10, 13]));
  fs.symlinkSync('/etc/passwd', path.join(root, 'outside-link'));
  fs.writeFileSync(path.join(root, '.gitignore'), 'ignored.log\n');
  for (let i = 0; i < 3; i++) {
    fs.writeFileSync(path.join(root, 'history.txt'), `commit ${i}\n`);
    sh(root, `git add -A && git commit -q -m "commit ${i}"`);
  }
  // Local state: an unstaged edit, a staged edit, a staged new file, a deleted file, untracked and ignored files.
  fs.writeFileSync(path.join(root, 'README'), 'hello, edited but not staged\n');
  fs.writeFileSync(path.join(root, 'history.txt'), 'staged edit\n');
  fs.writeFileSync(path.join(root, 'staged-new.txt'), 'new and staged\n');
  sh(root, 'git add history.txt staged-new.txt && rm -- -dash.txt');
  fs.writeFileSync(path.join(root, '.env'), 'SECRET=stays-home\n');
  fs.writeFileSync(path.join(root, 'ignored.log'), 'ignored\n');
}

describe('workspace round trip (real git and tar, host as guest)', () => {
  let host: string;
  let guestRoot: string;
  const progress: ProgressEvent[] = [];

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-ws-'));
    process.env.GIT_CONFIG_GLOBAL = path.join(dir, 'gitconfig');
    process.env.GIT_CONFIG_NOSYSTEM = '1';
    fs.writeFileSync(path.join(dir, 'gitconfig'), '[user]\n\tname = Global Name\n\temail = global@example.org\n');
    host = path.join(dir, 'host');
    guestRoot = path.join(dir, 'guest');
    fs.mkdirSync(guestRoot);
    hostileRepo(host);
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('plans tracked files only by default, without deleted ones, and with the local identity', async () => {
    const plan = await planWorkspace(runner, path.join(host, '.'));
    assert.deepEqual([...plan.files].sort(), ['.gitignore', 'README', 'blob.bin', 'history.txt', 'new\nline', 'outside-link', 'run.sh', 'staged-new.txt', 'with space é.txt'].sort());
    assert.equal(plan.staged, true);
    assert.equal(plan.headBranch, 'main');
    assert.deepEqual(plan.user, { name: 'Repo Owner', email: 'owner@example.org' });
    const withUntracked = await planWorkspace(runner, host, { includeUntracked: true });
    assert.ok(withUntracked.files.includes('.env'));
    assert.ok(!withUntracked.files.includes('ignored.log'));
    assert.equal(withUntracked.untracked, 1);
  });

  /** What the guest must find, however the checkout got there. */
  function assertCheckout(dest: string, plan: WorkspacePlan): void {
    assert.equal(sh(dest, 'git rev-parse HEAD').trim(), plan.head);
    assert.equal(sh(dest, 'git symbolic-ref --short HEAD').trim(), 'main');
    assert.equal(sh(dest, 'git log --format=%s').trim().split('\n').length, 3);
    assert.equal(fs.readFileSync(path.join(dest, 'README'), 'utf8'), 'hello, edited but not staged\n');
    assert.equal(fs.readlinkSync(path.join(dest, 'outside-link')), '/etc/passwd');
    assert.equal(fs.statSync(path.join(dest, 'run.sh')).mode & 0o777, 0o755);
    assert.ok(!fs.existsSync(path.join(dest, '.env')), 'untracked files stay home by default');
    assert.ok(!fs.existsSync(path.join(dest, '-dash.txt')), 'a file deleted on the host is deleted in the guest');
    assert.equal(sh(dest, 'git diff --cached --name-only').trim().split('\n').sort().join(','), 'history.txt,staged-new.txt');
    assert.equal(sh(dest, 'git diff --name-only').trim().split('\n').sort().join(','), '-dash.txt,README');
    assert.equal(sh(dest, 'git config user.name').trim(), 'Repo Owner');
    assert.ok(sh(dest, 'git config --global --get-all safe.directory').split('\n').includes(dest));
    assert.deepEqual(fs.readdirSync(path.join(dest, '.git')).filter((f) => f.startsWith('banger')), [], 'no scratch files left in .git');
  }

  it('ships a real repository: same HEAD, history, local changes, staged changes staged, symlinks as symlinks', async () => {
    const plan = await planWorkspace(runner, path.join(host, '.'));
    const dest = path.join(guestRoot, 'repo');
    await shipWorkspace({ runner, plan, target: TARGET, dir: dest, signal: new AbortController().signal, progress: (e) => progress.push(e), scratch: fs.mkdtempSync(path.join(dir, 'scratch-')), remote: local });
    assertCheckout(dest, plan);
    assert.ok(!fs.existsSync(`${dest}.banger-incoming`));
    assert.ok(progress.some((e) => e.stage === 'workspace' && /copying 9 files and 20 commits/.test(e.message)));
  });

  it('builds the same checkout for a new work disk; the guest takes ownership of it and never of what a symlink points to', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('chown to root needs root');
    const plan = await planWorkspace(runner, host);
    const seed = path.join(dir, 'seed');
    fs.mkdirSync(seed);
    const dest = path.join(seed, 'repo');
    await stageWorkspace({ runner, plan, dest, signal: new AbortController().signal, progress: () => undefined });
    // As the daemon's own user would leave them on the host, and a file of that user's outside the checkout.
    const outside = path.join(dir, 'not-in-the-checkout');
    fs.writeFileSync(outside, 'x');
    fs.symlinkSync(outside, path.join(dest, 'link-out'));
    sh(dir, 'chown -hR 1000:1000 "$1" "$2"', dest, outside);
    sh(dir, 'sh -c "$1" banger-seeded "$2"', GUEST_SEEDED_SCRIPT, dest);
    fs.rmSync(path.join(dest, 'link-out'));
    assertCheckout(dest, plan);
    assert.equal(sh(dest, 'find . -not -uid 0 | wc -l').trim(), '0');
    assert.equal(fs.statSync(outside).uid, 1000, 'a symlink\'s target keeps its owner');
  });

  it('refuses to ship over an existing checkout, and leaves it as it was', async () => {
    const plan = await planWorkspace(runner, host);
    const dest = path.join(guestRoot, 'repo');
    await assert.rejects(
      shipWorkspace({ runner, plan, target: TARGET, dir: dest, signal: new AbortController().signal, progress: () => undefined, scratch: fs.mkdtempSync(path.join(dir, 'scratch-')), remote: local }),
      fails('VM_BAD_STATE', /already has a workspace/, { hint: true }),
    );
    assert.equal(fs.readFileSync(path.join(dest, 'README'), 'utf8'), 'hello, edited but not staged\n');
  });

  it('exports one patch that git apply takes on a clone at the base, giving the guest\'s exact tree', async () => {
    const dest = path.join(guestRoot, 'repo');
    const base = sh(dest, 'git rev-parse HEAD').trim();
    // In the guest: a commit, then uncommitted work of every kind on top.
    sh(dest, 'git add -A && git commit -q -m "guest commit"');
    fs.writeFileSync(path.join(dest, 'blob.bin'), Buffer.from([255, 0, 128, 7]));
    fs.rmSync(path.join(dest, 'history.txt'));
    fs.renameSync(path.join(dest, 'with space é.txt'), path.join(dest, 'renamed ü.txt'));
    fs.chmodSync(path.join(dest, 'README'), 0o755);
    fs.symlinkSync('README', path.join(dest, 'link to readme'));
    fs.writeFileSync(path.join(dest, 'untracked new.txt'), 'made in the guest\n');
    fs.writeFileSync(path.join(dest, 'ignored.log'), 'ignored in the guest too\n');
    const staged = sh(dest, 'git diff --cached --name-only');

    const patchFile = path.join(dir, 'out.patch');
    sh(dest, `sh -c "$1" banger-export "$2" "$3" > "$4"`, GUEST_EXPORT_SCRIPT, dest, base, patchFile);
    assert.equal(sh(dest, 'git diff --cached --name-only'), staged, "the guest's own index is untouched");
    const patch = fs.readFileSync(patchFile);
    assert.ok(patch.includes('GIT binary patch'));

    const clone = path.join(dir, 'clone');
    sh(dir, 'git clone -q "$1" "$2" && git -C "$2" checkout -q "$3"', dest, clone, base);
    sh(clone, 'git apply --check "$1" && git apply "$1"', patchFile);
    fs.rmSync(path.join(dest, 'ignored.log'));
    assert.equal(treeOf(clone), treeOf(dest));
  });

  it('refuses a base the guest does not have', async () => {
    const dest = path.join(guestRoot, 'repo');
    const r = spawnSync('sh', ['-c', GUEST_EXPORT_SCRIPT, 'banger-export', dest, 'f'.repeat(40)], { env: env(), encoding: 'utf8' });
    assert.equal(r.status, 19);
    assert.match(r.stderr, /is not in the guest's repository/);
  });

  it('refuses what cannot be shipped, before anything exists', async () => {
    await assert.rejects(planWorkspace(runner, path.join(dir, 'nope')), fails('INVALID_ARGUMENT', /does not exist/, { hint: true }));
    fs.mkdirSync(path.join(dir, 'plain'));
    await assert.rejects(planWorkspace(runner, path.join(dir, 'plain')), fails('INVALID_ARGUMENT', /is not inside a git repository/, { hint: true }));
    sh(dir, 'git init -q --bare bare.git');
    await assert.rejects(planWorkspace(runner, path.join(dir, 'bare.git')), fails('INVALID_ARGUMENT', /bare repository/, { hint: true }));
    sh(dir, 'git init -q empty');
    await assert.rejects(planWorkspace(runner, path.join(dir, 'empty')), fails('INVALID_ARGUMENT', /no commits yet/, { hint: true }));
    sh(dir, 'mkdir sub && cd sub && git init -q && echo x > f && git add f && git commit -qm x && git update-index --add --cacheinfo "160000,$(git rev-parse HEAD),vendor"');
    await assert.rejects(planWorkspace(runner, path.join(dir, 'sub')), fails('INVALID_ARGUMENT', /submodules/, { hint: true }));
    await assert.rejects(planWorkspace(runner, host, { from: 'HEAD~1' }), fails('INVALID_ARGUMENT', /--from needs --branch/, { hint: true }));
    await assert.rejects(planWorkspace(runner, host, { branch: '-x' }), fails('INVALID_ARGUMENT', /not a branch name/, { hint: true }));
    await assert.rejects(planWorkspace(runner, host, { branch: 'b', from: 'no-such-ref' }), fails('INVALID_ARGUMENT', /no such commit/, { hint: true }));
  });

  it('ships a worktree (.git is a file) and a guest-only branch from another ref', async () => {
    const wt = path.join(dir, 'wt');
    sh(host, 'git worktree add -q --detach "$1" HEAD~1', wt);
    const plan = await planWorkspace(runner, wt, { branch: 'guest-work', from: 'HEAD~1' });
    assert.equal(plan.headBranch, null);
    const dest = path.join(guestRoot, 'wt-repo');
    await shipWorkspace({ runner, plan, target: TARGET, dir: dest, signal: new AbortController().signal, progress: () => undefined, scratch: fs.mkdtempSync(path.join(dir, 'scratch-')), remote: local });
    assert.equal(sh(dest, 'git symbolic-ref --short HEAD').trim(), 'guest-work');
    assert.equal(sh(dest, 'git rev-parse HEAD').trim(), plan.base);
    assert.equal(sh(dest, 'git status --porcelain').trim(), '');
  });
});
