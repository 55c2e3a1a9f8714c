import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { BangerError } from '../../src/protocol/errors.ts';
import { connect, MAX_CONNECTIONS, MAX_REQUEST_BYTES, serve, type Handler, type ProgressEvent, type RpcConnection } from '../../src/protocol/jsonrpc.ts';
import { LineSplitter } from '../../src/protocol/line-splitter.ts';
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

/** A client that writes raw bytes and reads the server's lines back, as a buggy or hostile peer would. */
class RawClient {
  private readonly socket: net.Socket;
  private readonly splitter = new LineSplitter(64 * 1024 * 1024);
  private readonly lines: string[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  readonly closed: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.lines.push(...this.splitter.push(chunk).lines);
      this.wake();
    });
    // The server may reset the connection after its last line; what it sent before is already read.
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.on('close', () => {
      this.ended = true;
      this.wake();
      resolve();
    }));
  }

  static open(socketPath: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(socketPath);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** The next line the server sent, parsed; null once the connection closed without one. */
  async next(): Promise<Record<string, unknown> | null> {
    while (this.lines.length === 0 && !this.ended) {
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    const line = this.lines.shift();
    return line === undefined ? null : JSON.parse(line) as Record<string, unknown>;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}

/** Asserts a JSON-RPC error answer and returns its error object. */
function errorOf(reply: Record<string, unknown> | null, id: number | string | null, code: number): { code: number; message: string; data?: { code?: string; hint?: string } } {
  assert.ok(reply !== null, 'an answer before the connection closed');
  assert.equal(reply.jsonrpc, '2.0');
  assert.equal(reply.id, id, JSON.stringify(reply));
  const error = reply.error as { code: number; message: string; data?: { code?: string; hint?: string } };
  assert.equal(error.code, code, JSON.stringify(reply));
  return error;
}

describe('a JSON-RPC server no peer can crash', { timeout: 10_000 }, () => {
  let dir: string;
  let socketPath: string;
  let server: net.Server;
  let raw: RawClient;
  let nextId = 1000;
  const internalErrors: string[] = [];
  const serverConnections: RpcConnection[] = [];
  const handlers = new Map<string, Handler>([
    ['echo', async (params) => ({ got: params })],
    // Not async: it throws before any promise exists.
    ['throw.sync', () => {
      throw new Error('thrown before a promise');
    }],
    ['reject', () => Promise.reject(new Error('rejected promise'))],
    ['throw.unprintable', async () => {
      throw Object.create(null) as unknown;
    }],
    ['bigint', async () => 10n],
  ]);

  /** Sends a request on the raw connection and checks that its answer comes next: the server still serves. */
  async function assertStillAnswers(): Promise<void> {
    const id = nextId++;
    raw.write(`${JSON.stringify({ jsonrpc: '2.0', id, method: 'echo', params: { n: id } })}\n`);
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id, result: { got: { n: id } } });
  }

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-rpc-hostile-'));
    socketPath = path.join(dir, 'hostile.sock');
    server = await listenUnix(socketPath, { mode: 0o600 });
    serve(server, handlers, {
      identity: { name: 'bangerd', unavailable: 'DAEMON_UNAVAILABLE' },
      onConnection: (c) => serverConnections.push(c),
      onInternalError: (method) => internalErrors.push(method),
    });
  });

  after(async () => {
    for (const c of serverConnections) c.destroy();
    await closeServer(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(async () => {
    raw = await RawClient.open(socketPath);
  });

  afterEach(() => {
    raw.destroy();
  });

  const notObjects: Array<[string, RegExp]> = [
    ['null', /expected a JSON object, got null/],
    ['42', /expected a JSON object, got number/],
    ['"str"', /expected a JSON object, got string/],
    ['true', /expected a JSON object, got boolean/],
    ['[]', /batches \(JSON arrays\) are not supported/],
    ['[{"jsonrpc":"2.0","id":1,"method":"echo"}]', /batches \(JSON arrays\) are not supported/],
    ['{}', /a request needs a method/],
    ['{"jsonrpc":"2.0","id":null,"method":"echo"}', /id must be a number or a string, got null/],
    ['{"jsonrpc":"2.0","id":{"a":1},"method":"echo"}', /id must be a number or a string, got object/],
    ['{"jsonrpc":"2.0","id":[1],"method":"echo"}', /id must be a number or a string, got an array/],
    ['{"jsonrpc":"2.0","id":true,"method":"echo"}', /id must be a number or a string, got boolean/],
  ];
  for (const [line, message] of notObjects) {
    it(`answers ${line} with Invalid Request and id null, and keeps serving`, async () => {
      raw.write(`${line}\n`);
      const error = errorOf(await raw.next(), null, -32600);
      assert.match(error.message, message);
      assert.ok(error.data?.hint, 'a hint');
      await assertStillAnswers();
    });
  }

  it('answers a request without a string method with Invalid Request and its id', async () => {
    raw.write('{"jsonrpc":"2.0","id":7,"method":5}\n');
    assert.match(errorOf(await raw.next(), 7, -32600).message, /method must be a string/);
    await assertStillAnswers();
  });

  it('answers a line that is not JSON with a parse error', async () => {
    raw.write('{not json\n');
    assert.match(errorOf(await raw.next(), null, -32700).message, /parse error/);
    await assertStillAnswers();
  });

  it('answers an unknown method with Method Not Found and its id', async () => {
    raw.write('{"jsonrpc":"2.0","id":"abc","method":"no.such"}\n');
    const error = errorOf(await raw.next(), 'abc', -32601);
    assert.match(error.message, /unknown method no\.such/);
    assert.ok(error.data?.hint, 'a hint');
    await assertStillAnswers();
  });

  it('drops notifications, well formed or not, without an answer', async () => {
    for (const line of [
      '{"jsonrpc":"2.0","method":"no.such"}',
      '{"jsonrpc":"2.0","method":"$/cancel","params":null}',
      '{"jsonrpc":"2.0","method":"$/cancel","params":5}',
      '{"jsonrpc":"2.0","method":"$/cancel","params":{"id":{"x":1}}}',
      '{"jsonrpc":"2.0","method":"$/progress","params":{"id":"x","stage":{},"message":[1]}}',
      '{"jsonrpc":"2.0","method":7}',
      '{"jsonrpc":"2.0","id":99,"result":"an answer to a call nobody made"}',
      '{"jsonrpc":"2.0","id":null,"error":5}',
    ]) {
      raw.write(`${line}\n`);
    }
    // Had any of them been answered, that answer would come first: the server handles lines in order.
    await assertStillAnswers();
  });

  it('skips blank lines and reads several requests from one write', async () => {
    raw.write('\n  \n{"jsonrpc":"2.0","id":1,"method":"echo","params":1}\n{"jsonrpc":"2.0","id":2,"method":"echo","params":2}\n');
    assert.deepEqual([await raw.next(), await raw.next()], [
      { jsonrpc: '2.0', id: 1, result: { got: 1 } },
      { jsonrpc: '2.0', id: 2, result: { got: 2 } },
    ]);
  });

  const failing: Array<[string, RegExp]> = [
    ['throw.sync', /thrown before a promise/],
    ['reject', /rejected promise/],
    ['throw.unprintable', /cannot be shown/],
    ['bigint', /BigInt/],
  ];
  for (const [method, message] of failing) {
    it(`answers ${method} as an internal error and keeps serving`, async () => {
      internalErrors.length = 0;
      raw.write(`${JSON.stringify({ jsonrpc: '2.0', id: 5, method })}\n`);
      const error = errorOf(await raw.next(), 5, -32603);
      assert.match(error.message, message);
      assert.equal(error.data?.code, 'INTERNAL');
      assert.deepEqual(internalErrors, [method]);
      await assertStillAnswers();
    });
  }

  it(`refuses a line longer than ${MAX_REQUEST_BYTES} bytes, names the limit and closes; others are still served`, async () => {
    // Just over the limit, so the whole write is read before the server closes (no write error here).
    raw.write(`{"jsonrpc":"2.0","id":1,"method":"echo","params":"${'x'.repeat(MAX_REQUEST_BYTES)}`);
    const error = errorOf(await raw.next(), null, -32600);
    assert.match(error.message, /message too large: a line ran past 1 MiB without a newline; the limit is 1048576 bytes/);
    assert.equal(error.data?.code, 'INVALID_ARGUMENT');
    assert.ok(error.data?.hint);
    await raw.closed;
    assert.equal(await raw.next(), null);
    const other = await RawClient.open(socketPath);
    try {
      other.write('{"jsonrpc":"2.0","id":1,"method":"echo","params":"ok"}\n');
      assert.deepEqual(await other.next(), { jsonrpc: '2.0', id: 1, result: { got: 'ok' } });
    } finally {
      other.destroy();
    }
  });

  it('accepts a line just under the limit, sent in many small pieces', async () => {
    const params = 'y'.repeat(MAX_REQUEST_BYTES - 100);
    const line = `{"jsonrpc":"2.0","id":3,"method":"echo","params":"${params}"}\n`;
    for (let i = 0; i < line.length; i += 4096) raw.write(line.slice(i, i + 4096));
    assert.deepEqual(await raw.next(), { jsonrpc: '2.0', id: 3, result: { got: params } });
  });
});

describe('a JSON-RPC server with every connection taken', { timeout: 10_000 }, () => {
  let dir: string;
  let socketPath: string;
  let server: net.Server;
  const serverConnections: RpcConnection[] = [];
  const clients: RpcConnection[] = [];

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-rpc-full-'));
    socketPath = path.join(dir, 'full.sock');
    server = await listenUnix(socketPath, { mode: 0o600 });
    serve(server, new Map<string, Handler>([['ping', async () => 'pong']]), {
      identity: { name: 'bangerd', unavailable: 'DAEMON_UNAVAILABLE' },
      onConnection: (c) => serverConnections.push(c),
    });
  });

  after(async () => {
    for (const c of clients) c.destroy();
    for (const c of serverConnections) c.destroy();
    await closeServer(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it(`serves ${MAX_CONNECTIONS} connections, refuses the next with a reason, and serves again once one closes`, async () => {
    for (let i = 0; i < MAX_CONNECTIONS; i++) clients.push(await connect(socketPath));
    // Each answer means the server has taken that connection.
    assert.deepEqual(new Set(await Promise.all(clients.map((c) => c.call('ping', {})))), new Set(['pong']));

    const refused = await connect(socketPath, { peer: { name: 'bangerd', unavailable: 'DAEMON_UNAVAILABLE', hint: 'see the log' } });
    await new Promise<void>((resolve) => refused.onClosed(resolve));
    await assert.rejects(refused.call('ping', {}), (err: unknown) => {
      assert.ok(err instanceof BangerError);
      assert.equal(err.code, 'DAEMON_UNAVAILABLE');
      assert.equal(err.message, `the connection to bangerd is closed: bangerd is already serving ${MAX_CONNECTIONS} connections; this one is refused`);
      assert.match(err.hint ?? '', /close other banger clients/);
      return true;
    });
    assert.equal(serverConnections.length, MAX_CONNECTIONS);

    const serverEnd = new Promise<void>((resolve) => serverConnections[0]!.onClosed(resolve));
    clients.shift()!.destroy();
    await serverEnd;
    const next = await connect(socketPath);
    clients.push(next);
    assert.equal(await next.call('ping', {}), 'pong');
  });
});
