import assert from 'node:assert/strict';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { BangerError } from '../../src/protocol/errors.ts';
import { connect, serve, type Handler, type ProgressEvent, type RpcConnection } from '../../src/protocol/jsonrpc.ts';
import { listenUnix } from '../../src/system/socket-server.ts';
import { runChecked } from '../../src/system/process.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

/** Resolves with the reason once `signal` aborts. */
function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

// The timeout turns a hang (a lost cancel or answer) into a failure; no test asserts on time.
describe('JSON-RPC over a Unix socket', { timeout: 10_000 }, () => {
  let dir: string;
  let socketPath: string;
  let server: net.Server;
  let client: RpcConnection;
  const serverConnections: RpcConnection[] = [];
  /** Handler failures the server reported as unexpected. */
  const internalErrors: Array<{ method: string; err: unknown }> = [];
  /** Answers `ip link add` like the kernel refusing it. */
  const ipFails = new FakeProcessRunner().on('ip', () => ({ code: 2, stderr: 'first line\nRTNETLINK answers: File exists\n' }));
  /** Signals of handlers that started, and whether they saw an abort. */
  let started: Array<{ method: string; signal: AbortSignal }>;
  let handlerStarted: () => void;
  let handlerStartedPromise: Promise<void>;

  const handlers = new Map<string, Handler>([
    ['echo', async (params) => ({ got: params })],
    ['nothing', async () => undefined],
    ['fail.banger', async () => {
      throw new BangerError('VM_NOT_FOUND', 'no VM named "x"', { hint: 'see banger vm list' });
    }],
    ['fail.plain', async () => {
      throw new Error('boom');
    }],
    ['fail.program', async () => runChecked(ipFails, 'ip', ['link', 'add', 'dev', 'bgt1'])],
    ['fail.wrapped', async () => {
      try {
        await runChecked(ipFails, 'ip', ['link', 'add', 'dev', 'bgt1']);
      } catch (err) {
        throw new BangerError('NETWORK_FAILED', 'cannot create tap bgt1', { cause: err });
      }
    }],
    ['progress', async (_params, ctx) => {
      ctx.progress({ stage: 'one', message: 'first' });
      ctx.progress({ stage: 'two', message: 'second' });
      return 'done';
    }],
    ['wait', async (_params, ctx) => {
      started.push({ method: 'wait', signal: ctx.signal });
      handlerStarted();
      await aborted(ctx.signal);
      throw new BangerError('CANCELLED', 'handler saw the abort');
    }],
  ]);

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-rpc-'));
    socketPath = path.join(dir, 'run', 'test.sock');
    server = await listenUnix(socketPath, { mode: 0o600 });
    serve(server, handlers, { onConnection: (c) => serverConnections.push(c), onInternalError: (method, err) => internalErrors.push({ method, err }) });
  });

  after(async () => {
    for (const c of serverConnections) c.destroy();
    await closeServer(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    started = [];
    handlerStartedPromise = new Promise((resolve) => {
      handlerStarted = resolve;
    });
    client = await connect(socketPath);
  });

  afterEach(() => {
    client.destroy();
  });

  it('creates the socket with the requested mode', () => {
    assert.ok(fs.statSync(socketPath).isSocket());
    assert.equal(fs.statSync(socketPath).mode & 0o777, 0o600);
  });

  it('round-trips params and results', async () => {
    const params = { a: 1, list: ['x', 'y'], nested: { ok: true }, text: 'line\nbreak "quoted" ünïcode' };
    assert.deepEqual(await client.call('echo', params), { got: params });
  });

  it('turns an undefined result into null', async () => {
    assert.equal(await client.call('nothing', {}), null);
  });

  it('answers concurrent calls to the right caller', async () => {
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => client.call<{ got: number }>('echo', n)));
    assert.deepEqual(results.map((r) => r.got), [1, 2, 3, 4, 5]);
  });

  it('carries a BangerError code, message and hint over the wire', async () => {
    await assert.rejects(client.call('fail.banger', {}), (err: unknown) => {
      assert.ok(err instanceof BangerError);
      assert.equal(err.code, 'VM_NOT_FOUND');
      assert.equal(err.message, 'no VM named "x"');
      assert.equal(err.hint, 'see banger vm list');
      return true;
    });
  });

  it('reports any other error as INTERNAL with its message', async () => {
    await assert.rejects(client.call('fail.plain', {}), (err: unknown) => {
      assert.ok(err instanceof BangerError);
      assert.equal(err.code, 'INTERNAL');
      assert.equal(err.message, 'boom');
      assert.equal(err.hint, undefined);
      return true;
    });
  });

  it('carries the name and stderr tail of a program that failed, also when an error wraps it', async () => {
    await assert.rejects(client.call('fail.program', {}), (err: unknown) => {
      assert.ok(err instanceof BangerError);
      assert.equal(err.code, 'TOOL_FAILED');
      assert.equal(err.message, 'ip link add dev bgt1 failed (exit status 2): first line\nRTNETLINK answers: File exists');
      assert.match(err.hint ?? '', /iproute2/);
      return true;
    });
    await assert.rejects(client.call('fail.wrapped', {}), (err: unknown) => {
      assert.ok(err instanceof BangerError);
      assert.equal(err.code, 'NETWORK_FAILED');
      assert.equal(err.message, 'cannot create tap bgt1: ip link add dev bgt1 failed (exit status 2): first line\nRTNETLINK answers: File exists');
      return true;
    });
  });

  it('tells the server about failures that reach the caller as INTERNAL, and only those', async () => {
    internalErrors.length = 0;
    await assert.rejects(client.call('fail.plain', {}));
    await assert.rejects(client.call('fail.banger', {}));
    await assert.rejects(client.call('fail.wrapped', {}));
    assert.deepEqual(internalErrors.map((e) => [e.method, (e.err as Error).message]), [['fail.plain', 'boom']]);
  });

  it('rejects an unknown method', async () => {
    await assert.rejects(client.call('no.such', {}), (err: unknown) => err instanceof BangerError && /unknown method no\.such/.test(err.message));
  });

  it('delivers progress notifications to the caller before the result', async () => {
    const events: ProgressEvent[] = [];
    const result = await client.call('progress', {}, { onProgress: (e) => events.push(e) });
    assert.equal(result, 'done');
    assert.deepEqual(events, [{ stage: 'one', message: 'first' }, { stage: 'two', message: 'second' }]);
  });

  it('cancels a running handler when the caller aborts its signal', async () => {
    const controller = new AbortController();
    const call = client.call('wait', {}, { signal: controller.signal });
    await handlerStartedPromise;
    assert.equal(started[0]!.signal.aborted, false);
    controller.abort();
    await assert.rejects(call, (err: unknown) => err instanceof BangerError && err.code === 'CANCELLED' && err.message === 'handler saw the abort');
    assert.equal(started[0]!.signal.aborted, true);
    // The connection stays usable.
    assert.deepEqual(await client.call('echo', 1), { got: 1 });
  });

  it('cancels a call whose signal is already aborted', {
  }, async () => {
    const call = client.call('wait', {}, { signal: AbortSignal.abort() });
    const outcome = call.then(() => 'resolved', (err: unknown) => err);
    // Messages on one connection are handled in order, so after this answer the server has seen the call too.
    await client.call('echo', 1);
    assert.ok(started.length === 0 || started[0]!.signal.aborted, 'the handler of an already-cancelled call was not aborted');
    const err = await outcome;
    assert.ok(err instanceof BangerError && err.code === 'CANCELLED', `rejected with CANCELLED, got ${String(err)}`);
  });

  it('aborts running handlers when the client closes, and fails the pending call', async () => {
    const call = client.call('wait', {});
    await handlerStartedPromise;
    const signal = started[0]!.signal;
    client.close();
    await aborted(signal);
    assert.equal(signal.aborted, true);
    await assert.rejects(call, (err: unknown) => err instanceof BangerError && err.code === 'DAEMON_UNAVAILABLE');
    await assert.rejects(client.call('echo', 1), (err: unknown) => err instanceof BangerError && err.code === 'DAEMON_UNAVAILABLE');
  });

  it('names the peer in the error of a call its closing connection cut off, with its code and hint', async () => {
    const helper = await connect(socketPath, { peer: { name: 'bangerd-root', unavailable: 'HELPER_UNAVAILABLE', hint: 'start it: sudo bangerd-root' } });
    try {
      const call = helper.call('wait', {});
      await handlerStartedPromise;
      // The server end goes away, as when bangerd-root exits mid-call.
      serverConnections.at(-1)!.destroy();
      await assert.rejects(call, (err: unknown) => {
        assert.ok(err instanceof BangerError);
        assert.equal(err.code, 'HELPER_UNAVAILABLE');
        assert.equal(err.message, 'the connection to bangerd-root closed before wait finished');
        assert.equal(err.hint, 'start it: sudo bangerd-root');
        return true;
      });
      await assert.rejects(helper.call('echo', 1), (err: unknown) => err instanceof BangerError && err.code === 'HELPER_UNAVAILABLE' && /bangerd-root is closed/.test(err.message));
    } finally {
      helper.destroy();
    }
  });

  it('notifies close listeners, including ones added after the close', async () => {
    let calls = 0;
    const closed = new Promise<void>((resolve) => client.onClosed(() => {
      calls++;
      resolve();
    }));
    client.close();
    await closed;
    let late = false;
    client.onClosed(() => {
      late = true;
    });
    assert.equal(calls, 1);
    assert.equal(late, true);
  });
});

describe('listenUnix', { timeout: 10_000 }, () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-listen-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to take over a socket another server is listening on', async () => {
    const socketPath = path.join(dir, 'live.sock');
    const first = await listenUnix(socketPath, { mode: 0o600 });
    try {
      // Should it wrongly succeed, close the second server so the failure does not hang the run.
      const outcome = await listenUnix(socketPath, { mode: 0o600 }).then(async (s) => {
        await closeServer(s);
        return 'took over';
      }, (err: unknown) => err);
      assert.ok(outcome instanceof Error && /already serving/.test(outcome.message), `refused, got ${String(outcome)}`);
      // The first server still answers.
      serve(first, new Map<string, Handler>([['ping', async () => 'pong']]));
      const c = await connect(socketPath);
      assert.equal(await c.call('ping', {}), 'pong');
      c.destroy();
    } finally {
      await closeServer(first);
    }
  });

  it('replaces a stale socket file nobody listens on', async () => {
    const socketPath = path.join(dir, 'stale.sock');
    fs.writeFileSync(socketPath, 'left over from a crashed daemon');
    const server = await listenUnix(socketPath, { mode: 0o660 });
    try {
      assert.ok(fs.statSync(socketPath).isSocket());
      assert.equal(fs.statSync(socketPath).mode & 0o777, 0o660);
      serve(server, new Map<string, Handler>([['ping', async () => 'pong']]));
      const c = await connect(socketPath);
      assert.equal(await c.call('ping', {}), 'pong');
      c.destroy();
    } finally {
      await closeServer(server);
    }
  });

  it('creates the parent directory readable only by its owner', async () => {
    const socketPath = path.join(dir, 'fresh', 'd.sock');
    const server = await listenUnix(socketPath, { mode: 0o600 });
    try {
      assert.equal(fs.statSync(path.dirname(socketPath)).mode & 0o777, 0o700);
    } finally {
      await closeServer(server);
    }
  });
});
