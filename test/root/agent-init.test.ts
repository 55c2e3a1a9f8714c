// `banger-agent --init` as PID 1 of a new PID namespace (unshare needs root), standing in for a guest without
// an init system: it supervises its child, reaps orphans, tells `health` that it is the init, and on SIGTERM
// terminates every process (SIGKILL for those that ignore SIGTERM) and exits 0 (--no-reboot). Then, in a
// private mount namespace and a chroot built from a static busybox, the mounts and /dev links it makes.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { agentBinaryPath } from '../../src/system/agent-binary.ts';
import { systemClock } from '../../src/system/clock.ts';
import { AgentClient } from '../../src/vmm/agent-client.ts';

const AGENT = agentBinaryPath();
const REPO = path.resolve(path.dirname(AGENT), '..');

// Stands in for the agent child. Its first start fails, to be restarted; the second records its environment,
// leaves an orphan that waits for the test's go file (its parent exits at once, so PID 1 inherits it), starts
// a process that ignores SIGTERM, and itself records SIGTERM.
const CHILD = String.raw`
echo $$ >> "$DIR/starts"
[ "$(wc -l < "$DIR/starts")" -eq 1 ] && exit 3
env > "$DIR/env"
( sh -c 'echo $$ > "$DIR/orphan.tmp"; mv "$DIR/orphan.tmp" "$DIR/orphan"; while [ ! -e "$DIR/go" ]; do sleep 0.05; done' & )
( trap '' TERM; exec sleep 1000 ) &
trap 'echo term > "$DIR/term"; exit 0' TERM
sleep 1000 & wait
`;

/** Polls check until it returns a value; what names it in the failure (a function: described at that time). */
async function waitFor<T>(check: () => T | undefined, what: string | (() => string), timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function readOr(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The host pid of a child of `parent`, from the host's /proc. */
function childOf(parent: number): number | undefined {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = readOr(`/proc/${entry}/status`)?.match(/^PPid:\s+(\d+)$/m)?.[1];
    if (ppid === String(parent)) return Number(entry);
  }
  return undefined;
}

describe('banger-agent --init in a PID namespace', () => {
  let dir: string;
  let unshare: ChildProcess;
  let stderr = '';
  let exited: Promise<number | null>;
  let init = 0; // its pid on the host, once found

  before(async () => {
    const built = spawnSync('bash', [path.join(REPO, 'scripts/build-agent.sh')], { encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-agent-init-'));
    const env: NodeJS.ProcessEnv = { DIR: dir, PATH: '/usr/bin:/bin', HOME: '/' };
    unshare = spawn('unshare', ['--pid', '--fork', '--mount-proc', AGENT, '--init', '--no-mounts', '--no-reboot', '--no-sshd',
      '--', 'sh', '-c', CHILD], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    unshare.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    exited = new Promise((resolve) => unshare.on('exit', (code) => resolve(code)));
    init = await waitFor(() => childOf(unshare.pid!), 'the init process');
  });

  after(async () => {
    // Killing a namespace's PID 1 kills every process in it; unshare then reaps it and exits.
    if (unshare.exitCode === null && unshare.signalCode === null) {
      if (init > 0) process.kill(init, 'SIGKILL');
      else unshare.kill('SIGKILL');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A file in the namespace's /proc: /proc/PID/root resolves in that process's mount namespace. */
  const nsProc = (rel: string): string => `/proc/${init}/root/proc/${rel}`;

  it('runs as PID 1 and restarts its child when it exits', async () => {
    assert.match(fs.readFileSync(`/proc/${init}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m);
    await waitFor(() => (readOr(path.join(dir, 'starts'))?.trim().split('\n').length === 2 ? true : undefined), () => `the restart (stderr: ${stderr})`);
    assert.match(stderr, /agent \(pid \d+\) exited with status 3; restarting in 1s/);
  });

  it('gives its children the agent PATH, HOME=/root and TERM=linux', async () => {
    const env = await waitFor(() => readOr(path.join(dir, 'env')), 'the env file');
    assert.match(env, /^PATH=\/usr\/local\/sbin:\/usr\/local\/bin:\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m);
    assert.match(env, /^HOME=\/root$/m);
    assert.match(env, /^TERM=linux$/m);
    assert.match(env, new RegExp(`^DIR=${dir}$`, 'm'));
  });

  it('inherits an orphan and reaps it when it exits', async () => {
    const pid = (await waitFor(() => readOr(path.join(dir, 'orphan')), 'the orphan')).trim();
    // Its parent subshell exits right after starting it.
    await waitFor(() => (readOr(nsProc(`${pid}/status`))?.match(/^PPid:\s+1$/m) ? true : undefined), () => `the orphan to be re-parented to PID 1 (stderr: ${stderr})`);
    fs.writeFileSync(path.join(dir, 'go'), '');
    // A zombie keeps its /proc entry (State: Z) until its parent reaps it.
    await waitFor(() => (fs.existsSync(nsProc(pid)) ? undefined : true), () => `orphan ${pid} to be reaped (status: ${readOr(nsProc(`${pid}/status`))})`);
  });

  it('tells health that banger-agent is the init', async () => {
    const agent = spawn('nsenter', ['-t', String(init), '-p', '-m', AGENT, '--stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const client = new AgentClient(Duplex.from({ readable: agent.stdout!, writable: agent.stdin! }), { clock: systemClock, helloRetryMs: 2000 });
    try {
      await client.handshake(10_000);
      const health = await client.request<{ systemState: string; init: string }>('health', {}, { timeoutMs: 10_000 });
      assert.equal(health.init, 'banger-agent');
      assert.equal(health.systemState, 'no-systemd');
    } finally {
      // At stdin's EOF the agent exits, and nsenter with it (a SIGKILLed nsenter would orphan it instead).
      client.close();
      agent.stdin!.end();
      if (agent.exitCode === null) await new Promise((resolve) => agent.on('exit', resolve));
    }
  });

  it('on SIGTERM terminates every process, kills the one that ignores SIGTERM, and exits 0', async () => {
    process.kill(init, 'SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.equal(readOr(path.join(dir, 'term')), 'term\n');
    assert.match(stderr, /SIGTERM: stopping every process/);
    assert.match(stderr, /processes left after 2s: sending SIGKILL/);
    assert.doesNotMatch(stderr, /processes left after SIGKILL/);
  });
});

describe('banger-agent --init mounting a root of its own', () => {
  let root: string;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-agent-init-root-'));
    for (const d of ['bin', 'dev', 'usr/local/libexec']) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
    fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
    fs.symlinkSync('busybox', path.join(root, 'bin/sh'));
    fs.copyFileSync(AGENT, path.join(root, 'usr/local/libexec/banger-agent'));
    fs.chmodSync(path.join(root, 'usr/local/libexec/banger-agent'), 0o755);
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  it('mounts proc, sysfs, devpts, /dev/shm and /run, links /dev/fd and friends, and leaves nothing mounted', async (t) => {
    if (spawnSync('chroot', [root, '/bin/busybox', 'true']).status !== 0) {
      t.skip('needs a static /bin/busybox');
      return;
    }
    // The child reports what it sees, then waits for SIGTERM.
    const report = 'cat /proc/mounts > /mounts; busybox ls -l /dev > /devlinks; busybox stat -c "%a %n" /dev/shm /run > /modes; ' +
      'busybox mv /mounts /mounts.done; exec busybox sleep 1000';
    const unshare = spawn('unshare', ['--pid', '--fork', '--mount', '--propagation', 'private', 'chroot', root,
      '/usr/local/libexec/banger-agent', '--init', '--no-reboot', '--no-sshd', '--', '/bin/sh', '-c', report],
    { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    unshare.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => unshare.on('exit', (code) => resolve(code)));
    const init = await waitFor(() => childOf(unshare.pid!), 'the init process');
    try {
      const mounts = await waitFor(() => readOr(path.join(root, 'mounts.done')), () => `the report (stderr: ${stderr})`);
      const byTarget = new Map(mounts.trim().split('\n').map((l) => l.split(' ')).map((f) => [f[1], f]));
      assert.equal(byTarget.get('/proc')?.[2], 'proc');
      assert.equal(byTarget.get('/sys')?.[2], 'sysfs');
      assert.equal(byTarget.get('/dev/pts')?.[2], 'devpts');
      assert.match(byTarget.get('/dev/pts')?.[3] ?? '', /gid=5,mode=620,ptmxmode=666/);
      assert.equal(byTarget.get('/dev/shm')?.[2], 'tmpfs');
      assert.equal(byTarget.get('/run')?.[2], 'tmpfs');
      assert.equal(fs.readFileSync(path.join(root, 'modes'), 'utf8'), '1777 /dev/shm\n755 /run\n');
      const links = fs.readFileSync(path.join(root, 'devlinks'), 'utf8');
      for (const l of ['fd -> /proc/self/fd', 'stdin -> /proc/self/fd/0', 'stdout -> /proc/self/fd/1', 'stderr -> /proc/self/fd/2', 'ptmx -> pts/ptmx']) {
        assert.ok(links.includes(l), `/dev lacks ${l}:\n${links}`);
      }
      assert.doesNotMatch(stderr, /mount .* on /);
      process.kill(init, 'SIGTERM');
      assert.equal(await exited, 0, stderr);
    } finally {
      if (unshare.exitCode === null && unshare.signalCode === null) {
        process.kill(init, 'SIGKILL');
        await exited;
      }
    }
    assert.ok(!fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(root), 'a mount leaked out of the namespace');
  });
});
