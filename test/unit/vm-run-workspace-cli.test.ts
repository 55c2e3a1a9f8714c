// vm run PATH, vm exec and vm workspace export through main() with a fake client and a real git checkout:
// every refusal comes before the daemon is reached, the VM is created with the workspace, and its bootstrap
// runs in that VM.
import assert from 'node:assert/strict';
import { BangerError } from '../../src/protocol/errors.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { main } from '../../src/cli/program.ts';
import type { Output } from '../../src/cli/output.ts';
import type { SshTarget, VmCreateParams, VmInfo, WorkspaceBootstrapParams } from '../../src/protocol/methods.ts';
import type { BangerClient } from '../../src/sdk/client.ts';

const vm: VmInfo = {
  id: '0123456789ab', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'host-6.1', vcpus: 1, memoryMib: 512, diskGib: 1,
  ip: '172.30.0.2', mac: '52:54:00:89:ab:cd', tap: 'bgt0123456789ab', accel: 'tcg', pid: 42, createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null,
};
const target: SshTarget = { vmId: vm.id, name: vm.name, ip: vm.ip, user: 'root', keyPath: 'k', knownHostsPath: 'h', hostKeyAlias: 'a', netns: null, workdir: '/root/repo' };

interface Calls { connects: number; creates: VmCreateParams[]; bootstraps: WorkspaceBootstrapParams[]; deletes: string[]; ssh: Array<{ command: string[] | null; cwd: string | undefined }>; agent: Array<{ vm: string; command: string[] }> }

async function run(argv: string[], overrides: Partial<BangerClient> = {}): Promise<{ status: number; out: string[]; err: string[]; raw: Buffer[]; calls: Calls }> {
  const calls: Calls = { connects: 0, creates: [], bootstraps: [], deletes: [], ssh: [], agent: [] };
  const out: string[] = [];
  const err: string[] = [];
  const raw: Buffer[] = [];
  const output: Output = { out: (t) => out.push(t), err: (t) => err.push(t), raw: (d) => raw.push(Buffer.from(d)) };
  const client = {
    createVm: async (p: VmCreateParams) => {
      calls.creates.push(p);
      return vm;
    },
    bootstrapWorkspace: async (p: WorkspaceBootstrapParams) => {
      calls.bootstraps.push(p);
      return { config: '.tool-versions', mode: p.mode, log: '/root/.cache/banger/mise-install.log' };
    },
    deleteVm: async (ref: string) => {
      calls.deletes.push(ref);
      return { id: vm.id, name: vm.name };
    },
    sshTarget: async () => target,
    showImage: async (name: string) => ({ image: { name, hasSshd: true }, vms: [] }),
    close: () => undefined,
    ...overrides,
  } as unknown as BangerClient;
  const status = await main(argv, {
    output,
    connect: async () => {
      calls.connects++;
      return client;
    },
    exit: () => undefined,
    runSsh: async (_t, command, options) => {
      calls.ssh.push({ command, cwd: options?.cwd });
      return 0;
    },
    runViaAgent: async (name, command) => {
      calls.agent.push({ vm: name, command });
      return 3;
    },
  });
  return { status, out, err, raw, calls };
}

describe('vm run on an image without sshd', () => {
  const noSshd = { showImage: async (name: string) => ({ image: { name, hasSshd: false }, vms: [] }) } as unknown as Partial<BangerClient>;

  it('runs the command through the guest agent, and still deletes the VM under --rm', async () => {
    const r = await run(['vm', 'run', '--rm', '--image', 'busybox', '--', 'echo', 'hi'], noSshd);
    assert.equal(r.status, 3, "the agent's exit status");
    assert.deepEqual(r.calls.agent, [{ vm: vm.id, command: ['echo', 'hi'] }]);
    assert.deepEqual(r.calls.ssh, []);
    assert.deepEqual(r.calls.deletes, [vm.id]);
  });

  it('refuses a shell, says to give a command, and deletes the VM under --rm', async () => {
    const r = await run(['vm', 'run', '--rm', '--image', 'busybox'], noSshd);
    assert.equal(r.status, 2);
    assert.match(r.err.join('\n'), /no sshd, so banger cannot open a shell[\s\S]*hint: give a command: banger vm run --image debian-bookworm -- /);
    assert.deepEqual(r.calls.agent, []);
    assert.deepEqual(r.calls.deletes, [vm.id]);
  });
});

describe('vm run PATH and the workspace commands', () => {
  let dir: string;
  let repo: string;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-run-ws-'));
    repo = path.join(dir, 'repo');
    fs.mkdirSync(repo);
    const git = (...args: string[]) => execFileSync('git', ['-C', repo, '-c', 'user.name=T', '-c', 'user.email=t@example.org', ...args]);
    git('init', '-q');
    fs.writeFileSync(path.join(repo, 'a.txt'), 'a\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'init');
  });

  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [argv, pattern] of [
    [['vm', 'run', '-d', '--rm'], /--detach and --rm contradict/],
    [['vm', 'run', '-d', '--', 'true'], /takes no command/],
    [['vm', 'run', '--from', 'HEAD', '.'], /--from needs --branch/],
    [['vm', 'run', '--dry-run'], /need a PATH/],
    [['vm', 'run', 'a', 'b'], /takes one path/],
  ] as const) {
    it(`refuses ${argv.join(' ')} before connecting`, async () => {
      const r = await run([...argv]);
      assert.equal(r.status, 2);
      assert.match(r.err[0]!, pattern);
      assert.match(r.err[1]!, /^hint: /);
      assert.equal(r.calls.connects, 0);
    });
  }

  it('refuses a directory outside git, and a mise repository without --nat, before connecting', async () => {
    const r = await run(['vm', 'run', dir, '--', 'true']);
    assert.equal(r.status, 2);
    assert.match(r.err[0]!, /is not inside a git repository/);
    fs.writeFileSync(path.join(repo, '.tool-versions'), '');
    execFileSync('git', ['-C', repo, 'add', '.tool-versions']);
    try {
      const m = await run(['vm', 'run', repo, '--', 'true']);
      assert.equal(m.status, 2);
      assert.match(m.err.join('\n'), /--nat[\s\S]*--no-bootstrap/);
      assert.equal(m.calls.connects, 0);
      const skipped = await run(['vm', 'run', repo, '--no-bootstrap', '--rm', '--', 'true']);
      assert.equal(skipped.status, 0, skipped.err.join('\n'));
      assert.deepEqual(skipped.calls.bootstraps, []);
      const withNat = await run(['vm', 'run', repo, '--nat', '--rm', '--', 'true']);
      assert.equal(withNat.status, 0, withNat.err.join('\n'));
      assert.deepEqual(withNat.calls.bootstraps, [{ ref: vm.id, mode: 'foreground' }], 'a command gets its tools first');
      const shell = await run(['vm', 'run', repo, '--nat']);
      assert.deepEqual(shell.calls.bootstraps, [{ ref: vm.id, mode: 'background' }], 'an interactive session starts while mise installs');
      const d = await run(['vm', 'run', repo, '--nat', '-d']);
      assert.deepEqual(d.calls.bootstraps, [{ ref: vm.id, mode: 'foreground' }], '-d returns once the tools are there');

      const failing = { bootstrapWorkspace: async () => Promise.reject(new Error('mise failed')) } as Partial<BangerClient>;
      const rm = await run(['vm', 'run', repo, '--nat', '--rm', '--', 'true'], failing);
      assert.notEqual(rm.status, 0);
      assert.deepEqual(rm.calls.deletes, [vm.id], 'a failed bootstrap under --rm deletes the VM');
      const kept = await run(['vm', 'run', repo, '--nat', '--', 'true'], failing);
      assert.deepEqual(kept.calls.deletes, []);
      assert.match(kept.err.join('\n'), /kept with its workspace but without its tools \(retry: banger vm exec web -- mise install/);
    } finally {
      execFileSync('git', ['-C', repo, 'rm', '-q', '--cached', '.tool-versions']);
      fs.rmSync(path.join(repo, '.tool-versions'));
    }
  });

  it('--dry-run prints the files and creates nothing', async () => {
    const r = await run(['vm', 'run', repo, '--dry-run']);
    assert.equal(r.status, 0);
    assert.deepEqual(r.out, ['a.txt']);
    assert.deepEqual(r.calls.creates, []);
  });

  it('creates the VM with the workspace (an absolute path) and runs the command in /root/repo', async () => {
    const r = await run(['vm', 'run', path.relative(process.cwd(), repo), '--rm', '--include-untracked', '--branch', 'try', '--', 'make', 'test']);
    assert.equal(r.status, 0, r.err.join('\n'));
    assert.deepEqual(r.calls.creates[0]?.workspace, { path: repo, includeUntracked: true, branch: 'try' });
    assert.deepEqual(r.calls.bootstraps, [], 'no tool config, no bootstrap');
    assert.deepEqual(r.calls.ssh, [{ command: ['make', 'test'], cwd: '/root/repo' }]);
    assert.deepEqual(r.calls.deletes, [vm.id]);
  });

  it('an interactive session and -d both get the workspace; -d leaves the VM and says how to reach it', async () => {
    const shell = await run(['vm', 'run', repo]);
    assert.equal(shell.calls.creates[0]?.workspace?.path, repo);
    assert.deepEqual(shell.calls.ssh, [{ command: null, cwd: '/root/repo' }]);
    const d = await run(['vm', 'run', repo, '-d']);
    assert.equal(d.status, 0);
    assert.deepEqual(d.calls.ssh, []);
    assert.match(d.out[0]!, /web is ready with .* at \/root\/repo: banger vm ssh web/);
  });

  it('vm run without a PATH creates a VM without a workspace', async () => {
    const r = await run(['vm', 'run', '--rm', '--', 'true']);
    assert.equal(r.status, 0, r.err.join('\n'));
    assert.equal(r.calls.creates[0]?.workspace, undefined);
    assert.deepEqual(r.calls.ssh, [{ command: ['true'], cwd: undefined }]);
  });

  it('vm exec --via ssh runs in the target\'s workdir and needs a command', async () => {
    const r = await run(['vm', 'exec', 'web', '--via', 'ssh', '--', 'git', 'status']);
    assert.deepEqual(r.calls.ssh, [{ command: ['git', 'status'], cwd: '/root/repo' }]);
    const none = await run(['vm', 'exec', 'web']);
    assert.equal(none.status, 2);
    assert.match(none.err[0]!, /needs a command after --/);
  });

  it('vm run -p forwards each port once the VM runs, and a bad -p is refused before anything is created', async () => {
    const forwards: Array<[string, number, number | undefined]> = [];
    const forwardPort = async (ref: string, guestPort: number, hostPort?: number) => {
      forwards.push([ref, guestPort, hostPort]);
      return { hostPort: hostPort ?? 40000, vmId: vm.id, guestPort, createdAt: vm.createdAt };
    };
    const r = await run(['vm', 'run', '--rm', '-p', '8080', '-p', '9000:80', '--', 'true'], { forwardPort } as Partial<BangerClient>);
    assert.equal(r.status, 0, r.err.join('\n'));
    assert.deepEqual(forwards, [[vm.id, 8080, undefined], [vm.id, 80, 9000]]);
    assert.ok(r.err.some((l) => l.includes(`127.0.0.1:40000 -> ${vm.name}.vm:8080`)), r.err.join('\n'));
    assert.deepEqual(r.calls.deletes, [vm.id]);
    const bad = await run(['vm', 'run', '-p', '70000', '--', 'true']);
    assert.equal(bad.status, 2);
    assert.match(bad.err[0]!, /is not a forward/);
    assert.equal(bad.calls.connects, 0);
  });

  it('vm run -p that cannot be served deletes the VM under --rm', async () => {
    const forwardPort = async () => {
      throw new BangerError('INVALID_ARGUMENT', 'host port 9000 is in use on 127.0.0.1');
    };
    const r = await run(['vm', 'run', '--rm', '-p', '9000:80', '--', 'true'], { forwardPort } as Partial<BangerClient>);
    assert.equal(r.status, 2);
    assert.deepEqual(r.calls.deletes, [vm.id]);
    assert.deepEqual(r.calls.ssh, []);
  });

  it('vm exec without a terminal goes through the guest agent and exits with its status; --via is checked', async () => {
    const r = await run(['vm', 'exec', 'web', '--', 'git', 'status']);
    assert.equal(r.status, 3);
    assert.deepEqual(r.calls.agent, [{ vm: 'web', command: ['git', 'status'] }]);
    assert.equal(r.calls.connects, 0, 'no JSON-RPC connection before the tunnel');
    assert.deepEqual(r.calls.ssh, []);
    const bad = await run(['vm', 'exec', 'web', '--via', 'telnet', '--', 'true']);
    assert.equal(bad.status, 2);
    assert.match(bad.err[0]!, /--via must be auto, agent or ssh/);
  });

  it('vm workspace export writes the patch bytes as they are, to stdout or to a file', async () => {
    const bytes = Buffer.from([0, 255, 10, 200]);
    const exportWorkspace = async () => ({ baseCommit: 'b'.repeat(40), patchBase64: bytes.toString('base64'), bytes: bytes.length });
    const r = await run(['vm', 'workspace', 'export', 'web'], { exportWorkspace } as Partial<BangerClient>);
    assert.deepEqual(Buffer.concat(r.raw), bytes);
    const file = path.join(dir, 'out.patch');
    const f = await run(['vm', 'workspace', 'export', 'web', '-o', file], { exportWorkspace } as Partial<BangerClient>);
    assert.equal(f.status, 0);
    assert.deepEqual(fs.readFileSync(file), bytes);
    assert.match(f.err[0]!, /apply with: git apply/);
  });
});
