// The host side of the agent protocol against the real guest agent (dist-agent/banger-agent, run with --stdio on
// this host), and against a silent or restarting peer for timeouts and failures.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { AgentService } from '../../src/daemon/services/agent-service.ts';
import { ForwardService } from '../../src/daemon/services/forward-service.ts';
import { agentExecParams, serveTunnels } from '../../src/daemon/tunnel-server.ts';
import { encodeFrame, FrameReader } from '../../src/protocol/agent-frames.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import { connectGuestPort, execInGuest } from '../../src/sdk/tunnel.ts';
import { Store } from '../../src/store/store.ts';
import { agentBinaryPath } from '../../src/system/agent-binary.ts';
import { systemClock } from '../../src/system/clock.ts';
import { AGENT_VERSION } from '../../src/system/guest-contract.ts';
import { AgentClient, AgentError, AgentUnavailable } from '../../src/vmm/agent-client.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { fails } from '../fakes/expect-error.ts';

const AGENT = agentBinaryPath();

/** The agent on this host speaking on its stdin/stdout, as one duplex stream. */
function startAgent(): { child: ChildProcess; stream: Duplex } {
  const child = spawn(AGENT, ['--stdio'], { stdio: ['pipe', 'pipe', 'ignore'] });
  return { child, stream: Duplex.from({ readable: child.stdout!, writable: child.stdin! }) };
}

const VM: VmInfo = {
  id: 'aaaaaaaaaaaa', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'k', vcpus: 1, memoryMib: 512, diskGib: 8,
  ip: '172.30.0.2', mac: '52:54:00:aa:aa:aa', tap: 'bgtaaaaaaaaaaaa', accel: 'tcg', pid: 1, createdAt: '2026-11-23T00:00:00.000Z', nat: false, workspace: null,
};

describe('AgentClient with the real agent', () => {
  let agent: { child: ChildProcess; stream: Duplex };
  let client: AgentClient;

  before(() => {
    assert.ok(fs.existsSync(AGENT), `${AGENT} is missing: run bash scripts/build-agent.sh`);
  });
  beforeEach(async () => {
    agent = startAgent();
    client = new AgentClient(agent.stream, { clock: systemClock, helloRetryMs: 2000 });
  });
  afterEach(() => {
    client.close();
    agent.child.kill('SIGKILL');
  });

  it('says hello through leftover bytes, and the agent reports the version this banger ships', async () => {
    agent.stream.write(Buffer.from('tail of an old frame \xb4ng'));
    const hello = await client.handshake(10_000);
    assert.equal(hello.version, 1);
    assert.equal(hello.agentVersion, AGENT_VERSION);
    assert.match(hello.bootId, /^[0-9a-f-]{36}$/);
  });

  it('answers health and stats with plausible numbers', async () => {
    await client.handshake(10_000);
    const health = await client.request<{ systemState: string; uptimeSec: number }>('health', {}, { timeoutMs: 10_000 });
    assert.ok(health.systemState.length > 0);
    assert.ok(health.uptimeSec > 0);
    const stats = await client.request<{ memTotalBytes: number; memUsedBytes: number; cpus: number }>('stats', { sampleMs: 50 }, { timeoutMs: 10_000 });
    assert.ok(Math.abs(stats.memTotalBytes - os.totalmem()) / os.totalmem() < 0.05, `memTotalBytes ${stats.memTotalBytes} vs ${os.totalmem()}`);
    assert.ok(stats.memUsedBytes > 0 && stats.memUsedBytes < stats.memTotalBytes);
    assert.ok(stats.cpus >= 1);
  });

  it('runs a command with stdin, separate stdout and stderr, and its exit status', async () => {
    await client.handshake(10_000);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stream = client.open('exec', { argv: ['sh', '-c', 'cat; echo oops >&2; exit 3'], stdin: true, cwd: '/' }, (f) => {
      if (f.header.t !== 'data') return;
      (f.header.ch === 'stderr' ? err : out).push(f.payload);
      stream.ack(String(f.header.ch), f.payload.length);
    });
    await stream.write('stdin', Buffer.from('hello from the host'));
    stream.end('stdin');
    const exit = await stream.done;
    assert.equal(exit.t, 'exit');
    assert.equal(exit.code, 3);
    assert.equal(Buffer.concat(out).toString(), 'hello from the host');
    assert.equal(Buffer.concat(err).toString(), 'oops\n');
  });

  it('delivers every stdin byte before the eof, even when the eof is asked for while writes wait for room', async () => {
    await client.handshake(10_000);
    let bytes = 0;
    const stream = client.open('exec', { argv: ['wc', '-c'], stdin: true }, (f) => {
      if (f.header.t !== 'data') return;
      bytes += f.payload.length;
      stream.ack('stdout', f.payload.length);
      out.push(f.payload);
    });
    const out: Buffer[] = [];
    // Two megabytes is eight windows: most writes wait for acks when end() is called.
    for (let i = 0; i < 32; i++) void stream.write('stdin', Buffer.alloc(65536, i));
    stream.end('stdin');
    assert.equal((await stream.done).code, 0);
    assert.equal(Number(Buffer.concat(out).toString().trim()), 32 * 65536);
    assert.ok(bytes > 0);
  });

  it('streams output larger than the flow-control window when the host acknowledges it', async () => {
    await client.handshake(10_000);
    let bytes = 0;
    const stream = client.open('exec', { argv: ['head', '-c', String(3 * 1024 * 1024), '/dev/zero'], stdin: false }, (f) => {
      if (f.header.t !== 'data') return;
      bytes += f.payload.length;
      stream.ack('stdout', f.payload.length);
    });
    assert.equal((await stream.done).code, 0);
    assert.equal(bytes, 3 * 1024 * 1024);
  });

  it('reports a program that does not exist as NOT_FOUND', async () => {
    await client.handshake(10_000);
    const stream = client.open('exec', { argv: ['/nonexistent/program'], stdin: false }, () => undefined);
    await assert.rejects(stream.done, (e: unknown) => e instanceof AgentError && e.agentCode === 'NOT_FOUND');
  });

  it('refuses a relative path for get and put', async () => {
    await client.handshake(10_000);
    await assert.rejects(client.request('get', { path: 'etc/passwd' }, { timeoutMs: 10_000 }), (e: unknown) => e instanceof AgentError && e.agentCode === 'BAD_REQUEST');
  });

  it('lists a TCP listener of this process with its pid', async () => {
    await client.handshake(10_000);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as net.AddressInfo).port;
      const r = await client.request<{ sockets: Array<{ proto: string; port: number; pid: number | null }> }>('ports', {}, { timeoutMs: 10_000 });
      const mine = r.sockets.find((s) => s.proto === 'tcp' && s.port === port);
      assert.ok(mine, `port ${port} not in ${JSON.stringify(r.sockets.map((s) => s.port))}`);
      assert.equal(mine.pid, process.pid);
    } finally {
      server.close();
    }
  });
});

describe('AgentClient without a working agent', () => {
  it('times out a hello nobody answers, on the clock it was given', async () => {
    const silent = new PassThrough();
    const client = new AgentClient(new Duplex({ read() {}, write(_c, _e, cb) { cb(); } }), { clock: new FakeClock(), helloRetryMs: 1000 });
    await assert.rejects(client.handshake(5000), (e: unknown) => e instanceof AgentUnavailable && /did not answer within 5s/.test((e as Error).message));
    silent.destroy();
  });

  it('fails requests in flight when the agent says ready again (it restarted)', async () => {
    const toHost = new PassThrough();
    const fromHost = new PassThrough();
    const client = new AgentClient(Duplex.from({ readable: toHost, writable: fromHost }), { clock: systemClock });
    const reader = new FrameReader();
    fromHost.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) {
        if (f.header.t === 'hello') toHost.write(encodeFrame({ t: 'ok', id: f.header.id, r: { version: 1, agentVersion: '0.1.0', nonce: f.header.nonce, bootId: 'b', pid: 1 } }));
        if (f.header.t === 'health') toHost.write(encodeFrame({ t: 'ready', id: 0, version: 1, agentVersion: '0.1.0', bootId: 'b' }));
      }
    });
    await client.handshake(5000);
    await assert.rejects(client.request('health', {}, { timeoutMs: 5000 }), (e: unknown) => e instanceof AgentUnavailable && /restarted/.test((e as Error).message));
    client.close();
  });
});

describe('forwards and the tunnel socket, over the real agent', () => {
  let dir: string;
  let store: Store;
  let agent: { child: ChildProcess; stream: Duplex };
  let agents: AgentService;
  let web: http.Server;
  let webPort: number;
  const logs: string[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-agent-'));
    store = new Store(':memory:');
    store.insertVm(VM);
    web = http.createServer((_req, res) => res.end('served from the guest'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    webPort = (web.address() as net.AddressInfo).port;
    agents = new AgentService({
      store, clock: systemClock, log: (m) => logs.push(m), endpoint: () => ({ kind: 'virtio-serial', path: '/unused' }),
      dial: async () => {
        agent = startAgent();
        return agent.stream;
      },
    });
  });
  after(() => {
    agents.close();
    agent?.child.kill('SIGKILL');
    web.close();
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("runs banger's own scripts to their end and keeps their output", async () => {
    const r = await agents.exec(VM, ['sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.deepEqual(r, { code: 3, stdout: 'out\n', stderr: 'err\n' });
    await assert.rejects(agents.exec(VM, ['/no/such/program']), fails('AGENT_FAILED', /could not run \/no\/such\/program/));
  });

  it('records the agent version at the first hello', async () => {
    await agents.require(VM);
    assert.equal(store.getVm(VM.id)!.agentVersion, AGENT_VERSION);
  });

  it('serves a guest port on a host loopback port, and resets a connection to a port nobody listens on', async () => {
    const forwards = new ForwardService({ store, clock: systemClock, agents, vm: (id) => store.getVm(id), log: (m) => logs.push(m) });
    try {
      const f = await forwards.add(store.getVm(VM.id)!, webPort);
      const body = await new Promise<string>((resolve, reject) => {
        http.get(`http://127.0.0.1:${f.hostPort}/`, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.equal(body, 'served from the guest');
      assert.deepEqual(store.listForwards(VM.id).map((x) => x.guestPort), [webPort]);

      const closed = await new Promise<number>((resolve) => {
        const spare = net.createServer();
        spare.listen(0, '127.0.0.1', async () => {
          const deadPort = (spare.address() as net.AddressInfo).port;
          spare.close();
          const g = await forwards.add(store.getVm(VM.id)!, deadPort);
          const s = net.connect(g.hostPort, '127.0.0.1');
          s.on('error', () => undefined);
          s.on('close', () => resolve(deadPort));
        });
      });
      assert.ok(closed > 0);
      forwards.dropAll(VM.id);
      assert.deepEqual(store.listForwards(VM.id), []);
    } finally {
      forwards.closeAll();
    }
  });

  it('runs a command and connects to a guest port through the tunnel socket', async () => {
    const socketPath = path.join(dir, 'tunnel.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    serveTunnels(server, { agents, show: () => store.getVm(VM.id)!, runConfig: () => null, log: (m) => logs.push(m) });
    try {
      const out = new PassThrough();
      const err = new PassThrough();
      const chunks: Buffer[] = [];
      out.on('data', (c: Buffer) => chunks.push(c));
      const stdin = new PassThrough();
      stdin.end('piped in');
      const result = await execInGuest('web', ['sh', '-c', 'cat; exit 7'], { socketPath, stdin, stdout: out, stderr: err, cwd: '/' });
      assert.equal(result.code, 7);
      assert.equal(Buffer.concat(chunks).toString(), 'piped in');

      await assert.rejects(execInGuest('web', ['/no/such/program'], { socketPath, stdout: out, stderr: err, cwd: '/' }), fails('AGENT_FAILED', /no\/such\/program/));

      const conn = await connectGuestPort('web', webPort, { socketPath });
      conn.write('GET / HTTP/1.0\r\n\r\n');
      const reply = await new Promise<string>((resolve) => {
        let text = '';
        conn.on('data', (c: Buffer) => (text += c.toString()));
        conn.on('end', () => resolve(text));
        conn.resume();
      });
      assert.match(reply, /served from the guest/);
    } finally {
      server.close();
    }
  });

  it("runs a command with the image's Env and WorkingDir under what the caller gives", async () => {
    const socketPath = path.join(dir, 'tunnel-run.sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const run = { env: ['FOO=from-image', 'BAR=image'], workingDir: dir, user: null, uid: 0, gid: 0, entrypoint: null, cmd: null };
    serveTunnels(server, { agents, show: () => store.getVm(VM.id)!, runConfig: () => run, log: (m) => logs.push(m) });
    try {
      const run1 = async (options: { cwd?: string; env?: Record<string, string> }): Promise<string> => {
        const out = new PassThrough();
        const chunks: Buffer[] = [];
        out.on('data', (c: Buffer) => chunks.push(c));
        const r = await execInGuest('web', ['sh', '-c', 'echo "$FOO $BAR"; pwd'], { socketPath, stdout: out, stderr: new PassThrough(), ...options });
        assert.equal(r.code, 0);
        return Buffer.concat(chunks).toString();
      };
      assert.equal(await run1({}), `from-image image\n${fs.realpathSync(dir)}\n`);
      assert.equal(await run1({ cwd: '/', env: { BAR: 'caller' } }), 'from-image caller\n/\n');
    } finally {
      server.close();
    }
  });
});

describe('agentExecParams', () => {
  const request = { op: 'exec' as const, vm: 'web', argv: ['id'] };
  it("asks for the image's user, and leaves root to the agent's default", () => {
    const run = { env: ['PATH=/bin', 'EQ=a=b'], workingDir: '/app', user: 'app', uid: 1000, gid: 1001, entrypoint: null, cmd: null };
    assert.deepEqual(agentExecParams(request, VM, run), { argv: ['id'], env: { PATH: '/bin', EQ: 'a=b' }, cwd: '/app', stdin: false, timeoutMs: 0, uid: 1000, gid: 1001 });
    assert.deepEqual(agentExecParams(request, VM, { ...run, uid: 0, gid: 0 }).uid, undefined);
    assert.deepEqual(agentExecParams(request, VM, null), { argv: ['id'], env: {}, cwd: '/root', stdin: false, timeoutMs: 0 });
  });

  it('runs in the workspace, before the image WorkingDir', () => {
    const vm = { ...VM, workspace: { source: '/src', dir: '/root/repo', baseCommit: 'abc', branch: null } };
    assert.equal(agentExecParams(request, vm, { env: [], workingDir: '/app', user: null, uid: 0, gid: 0, entrypoint: null, cmd: null }).cwd, '/root/repo');
  });
});
