// WorkspaceService over the VmService harness (fake VMM, privileged ops and ssh; real git and tar on the host; a
// real store): a VM made with a workspace gets it in its work disk before it boots, the guest is asked only to
// take ownership, and every refusal or failure leaves no VM behind.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { WorkspaceService } from '../../src/daemon/services/workspace-service.ts';
import { NodeProcessRunner } from '../../src/system/process.ts';
import { fails } from '../fakes/expect-error.ts';
import type { FakeCall } from '../fakes/fake-process-runner.ts';
import { callContext, vmServiceHarness, type VmServiceHarness } from '../fakes/vm-service-harness.ts';

/** The guest script an ssh call runs (its $0 name, such as banger-seeded), if it is one of banger's. */
const scriptOf = (call: FakeCall): string | undefined => / (banger-(?:seeded|bootstrap|unpack|export)) /.exec(call.args.join(' '))?.[1];

describe('WorkspaceService', () => {
  let h: VmServiceHarness;
  let workspaces: WorkspaceService;
  let repo: string;
  let head: string;

  beforeEach(() => {
    h = vmServiceHarness();
    const real = new NodeProcessRunner();
    // The checkout is planned and built with real git and tar; the guest is the fake ssh.
    for (const tool of ['git', 'bash']) h.runner.on(tool, ({ command, args, options }) => real.run(command, args, options));
    workspaces = new WorkspaceService({ vms: h.service, store: h.store, runner: h.runner, tmpDir: h.dir, staging: { memory: path.join(h.dir, 'shm'), disk: path.join(h.dir, 'disk') } });
    fs.mkdirSync(path.join(h.dir, 'shm'));
    repo = path.join(h.dir, 'repo');
    fs.mkdirSync(repo);
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=T', '-c', 'user.email=t@example.org', ...args], { encoding: 'utf8' });
    git('init', '-q', '-b', 'main');
    fs.mkdirSync(path.join(repo, 'src'));
    fs.writeFileSync(path.join(repo, 'src', 'a.txt'), 'a\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'init');
    fs.writeFileSync(path.join(repo, 'src', 'a.txt'), 'a, edited\n');
    head = git('rev-parse', 'HEAD').trim();
  });

  afterEach(() => h.dispose());

  it('makes the work disk with the checkout, hands it to root once sshd answers, and records the base', async () => {
    const { ctx, events } = callContext();
    const vm = await workspaces.create({ name: 'ws', workspace: { path: path.join(repo, 'src') } }, ctx);
    const seed = h.driver.workDiskSeeds[0]!;
    for (const entry of ['repo/', 'repo/.git/', 'repo/.git/HEAD', 'repo/.git/index', 'repo/src/', 'repo/src/a.txt']) assert.ok(seed.includes(entry), `${entry} in ${seed.join(' ')}`);
    assert.deepEqual(fs.readdirSync(path.join(h.dir, 'shm')), [], 'the checkout is removed once the disk is made');
    assert.ok(events.some((e) => /building the checkout in memory/.test(e.message)), 'a small checkout is built in memory');
    const guest = h.runner.callsTo('ssh').map(scriptOf).filter(Boolean);
    assert.deepEqual(guest, ['banger-seeded']);
    assert.deepEqual(vm.workspace, { source: repo, dir: '/root/repo', baseCommit: head, branch: null });
    assert.deepEqual(h.store.getVm(vm.id)?.workspace, vm.workspace);
    assert.ok(events.some((e) => e.stage === 'workspace' && /copying 1 files/.test(e.message)));
    // Made before the first boot: the disk stage comes after the files were listed, the boot after the copy.
    const stages = events.map((e) => e.stage);
    assert.ok(stages.indexOf('workspace') < stages.indexOf('boot'));
  });

  it('hands the checkout to root through the agent when the image has no sshd', async () => {
    Object.assign(h.image, { boot: 'agent', hasSshd: false });
    h.store.upsertImage(h.image);
    const execs: Array<{ vm: string; argv: string[] }> = [];
    const viaAgent = new WorkspaceService({
      vms: h.service, store: h.store, runner: h.runner, tmpDir: h.dir, staging: { memory: path.join(h.dir, 'shm'), disk: path.join(h.dir, 'disk') },
      hasSshd: (vm) => h.store.getImage(vm.image)?.hasSshd ?? true,
      agents: { exec: async (vm, argv) => { execs.push({ vm: vm.name, argv }); return { code: 0, stdout: '', stderr: '' }; } },
    });
    const vm = await viaAgent.create({ name: 'ws', workspace: { path: repo } }, callContext().ctx);
    assert.deepEqual(execs.map((e) => [e.vm, e.argv[3], e.argv[4]]), [['ws', 'banger-seeded', '/root/repo']]);
    assert.deepEqual(h.runner.callsTo('ssh'), [], 'no ssh at all');
    assert.equal(vm.workspace?.dir, '/root/repo');
  });

  it('refuses what it cannot ship before any VM, disk or tap exists', async () => {
    const { ctx } = callContext();
    const plain = path.join(h.dir, 'plain');
    fs.mkdirSync(plain);
    await assert.rejects(workspaces.create({ name: 'ws', workspace: { path: plain } }, ctx), fails('INVALID_ARGUMENT', /not inside a git repository/, { hint: true }));
    await assert.rejects(workspaces.create({ name: 'ws', start: false, workspace: { path: repo } }, ctx), fails('INVALID_ARGUMENT', /started and waited for/, { hint: true }));
    await assert.rejects(workspaces.create({ name: 'ws', waitSsh: false, workspace: { path: repo } }, ctx), fails('INVALID_ARGUMENT', /started and waited for/, { hint: true }));
    assert.deepEqual(h.store.listVms(), []);
    assert.deepEqual(h.driver.preparedDisks, []);
    assert.deepEqual(h.ops.calls.filter((c) => c.op === 'createTap'), []);
  });

  it('removes the VM when the guest cannot take the checkout', async () => {
    h.runner.on('ssh', (call) => (scriptOf(call) === 'banger-seeded' ? { code: 1, stderr: 'chown: /root/repo: Read-only file system\n' } : undefined));
    const { ctx } = callContext();
    await assert.rejects(workspaces.create({ name: 'ws', workspace: { path: repo } }, ctx), fails('WORKSPACE_FAILED', /handing \/root\/repo to root in ws failed \(exit 1\): chown: \/root\/repo: Read-only/, { hint: true }));
    assert.deepEqual(h.store.listVms(), []);
    assert.deepEqual(fs.readdirSync(h.vmsDir), []);
  });

  it('bootstraps only a VM with a workspace and NAT, and reports the config the guest found', async () => {
    const { ctx } = callContext();
    const plainVm = await h.service.create({ name: 'bare' }, ctx);
    await assert.rejects(workspaces.bootstrap({ ref: 'bare', mode: 'foreground' }, ctx), fails('INVALID_ARGUMENT', /has no workspace/, { hint: true }));
    const noNat = await workspaces.create({ name: 'no-nat', workspace: { path: repo } }, ctx);
    await assert.rejects(workspaces.bootstrap({ ref: noNat.id, mode: 'foreground' }, ctx), fails('INVALID_ARGUMENT', /no NAT/, { hint: true }));
    await workspaces.create({ name: 'nat', nat: true, workspace: { path: repo } }, ctx);
    h.runner.on('ssh', (call) => (scriptOf(call) === 'banger-bootstrap' ? { stdout: '.tool-versions\n' } : undefined));
    const ran = await workspaces.bootstrap({ ref: 'nat', mode: 'background' }, ctx);
    assert.deepEqual(ran, { config: '.tool-versions', mode: 'background', log: '/root/.cache/banger/mise-install.log' });
    const call = h.runner.callsTo('ssh').find((c) => scriptOf(c) === 'banger-bootstrap')!;
    assert.match(call.args.at(-1)!, / banger-bootstrap \/root\/repo \/root\/\.cache\/banger\/mise-install\.log background$/);
    h.runner.on('ssh', (c) => (scriptOf(c) === 'banger-bootstrap' ? { code: 127, stdout: 'mise.toml\n', stderr: 'banger: mise: not found\n' } : undefined));
    await assert.rejects(workspaces.bootstrap({ ref: 'nat', mode: 'foreground' }, ctx), fails('WORKSPACE_FAILED', /image has no mise, so mise.toml cannot be bootstrapped/, { hint: true }));
    assert.equal(plainVm.workspace, null);
  });
});
