// JSON-RPC 2.0 over a stream socket, one JSON object per line. Used between CLI/SDK and bangerd, and between
// bangerd and bangerd-root. Long calls report progress with `$/progress` notifications tied to the request id,
// and a caller cancels with `$/cancel` or simply by closing the socket.
import net from 'node:net';
import { BangerError, isErrorCode, messageWithCauses, type ErrorCode, type ErrorData } from './errors.ts';
import { LineSplitter } from './line-splitter.ts';

export interface ProgressEvent {
  stage: string;
  message: string;
}

export interface CallContext {
  signal: AbortSignal;
  progress(event: ProgressEvent): void;
}

export type Handler = (params: unknown, ctx: CallContext) => Promise<unknown>;

/** Who answers at the other end, for the error of a call that a closed connection cut off. */
export interface Peer {
  /** Its name in messages: "bangerd", "bangerd-root". */
  name: string;
  /** The code of that error: DAEMON_UNAVAILABLE, HELPER_UNAVAILABLE. */
  unavailable: ErrorCode;
  /** What to do then, such as how to start it. */
  hint?: string;
}

export interface RpcConnectionOptions {
  handlers?: ReadonlyMap<string, Handler>;
  peer?: Peer;
  /** Told about each handler failure that reaches the caller as INTERNAL (a bug, or a failure nobody explained). */
  onInternalError?: (method: string, err: unknown) => void;
  /** The longest line read from the peer, in bytes; a longer one is refused and the connection closed. */
  maxMessageBytes?: number;
}

const UNKNOWN_PEER: Peer = { name: 'the server', unavailable: 'DAEMON_UNAVAILABLE' };

/** The longest request a server reads: params are small, and each connection may hold one unfinished line. */
export const MAX_REQUEST_BYTES = 1024 * 1024;
/** The longest reply a client reads: vm.logs returns up to 4 MiB of console, which JSON may escape to six times that. */
export const MAX_REPLY_BYTES = 64 * 1024 * 1024;
/** Connections a server serves at once; more are refused, so no number of clients can exhaust its memory. */
export const MAX_CONNECTIONS = 64;

/** JSON-RPC 2.0 error codes for messages that never reach a handler. */
const PARSE_ERROR = -32700;
const INVALID_REQUEST = -32600;
const METHOD_NOT_FOUND = -32601;

interface Pending {
  method: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  onProgress: ((event: ProgressEvent) => void) | undefined;
}

interface WireError {
  code: number;
  message: string;
  data: ErrorData;
}

/** One end of a connection. Both ends may serve handlers; in practice the client only calls. */
export class RpcConnection {
  private readonly socket: net.Socket;
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly peer: Peer;
  private readonly onInternalError: ((method: string, err: unknown) => void) | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number | string, AbortController>();
  private readonly lines: LineSplitter;
  private nextId = 1;
  private closed = false;
  /** Set once this end refused the peer's input; later data is ignored until the socket closes. */
  private refusing = false;
  /** Why the connection is ending, when the peer or this end said so; it explains the calls it cuts off. */
  private closeReason: BangerError | null = null;
  private readonly closeListeners: Array<() => void> = [];

  constructor(socket: net.Socket, options: RpcConnectionOptions = {}) {
    this.socket = socket;
    this.handlers = options.handlers ?? new Map();
    this.peer = options.peer ?? UNKNOWN_PEER;
    this.onInternalError = options.onInternalError;
    this.lines = new LineSplitter(options.maxMessageBytes ?? MAX_REPLY_BYTES);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
  }

  onClosed(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  call<T>(method: string, params: unknown, options: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void } = {}): Promise<T> {
    if (this.closed) {
      const reason = this.closeReason;
      return Promise.reject(this.unavailable(`the connection to ${this.peer.name} is closed${reason ? `: ${reason.message}` : ''}`, reason?.hint));
    }
    if (options.signal?.aborted) return Promise.reject(new BangerError('CANCELLED', `${method} cancelled before it was sent`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const signal = options.signal;
      const onAbort = (): void => this.notify('$/cancel', { id });
      this.pending.set(id, {
        method,
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(value as T);
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
        onProgress: options.onProgress,
      });
      this.send({ jsonrpc: '2.0', id, method, params });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  notify(method: string, params: unknown): void {
    this.send({ jsonrpc: '2.0', method, params });
  }

  close(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  private send(message: unknown): void {
    this.write(JSON.stringify(message));
  }

  private write(line: string): void {
    if (this.closed || this.socket.destroyed) return;
    // A peer that sends requests but does not read the answers would make them pile up here: stop reading
    // its requests until it has taken what is written.
    if (!this.socket.write(`${line}\n`) && !this.socket.isPaused()) {
      this.socket.pause();
      this.socket.once('drain', () => {
        if (!this.refusing) this.socket.resume();
      });
    }
  }

  private onData(chunk: Buffer): void {
    if (this.refusing) return;
    const { lines, tooLarge } = this.lines.push(chunk);
    for (const line of lines) this.onLine(line);
    if (tooLarge) {
      const limit = this.lines.maxBytes;
      this.refuse(new BangerError('INVALID_ARGUMENT', `message too large: a line ran past ${describeBytes(limit)} without a newline; the limit is ${limit} bytes`, {
        hint: 'send one JSON object per line, each under the limit',
      }));
    }
  }

  private onLine(line: string): void {
    if (this.refusing || line.trim() === '') return;
    let message: unknown;
    try {
      message = JSON.parse(line);
    } catch {
      this.send(errorMessage(null, PARSE_ERROR, 'parse error: the line is not valid JSON', 'send one JSON-RPC 2.0 object per line'));
      return;
    }
    this.dispatch(message);
  }

  /** Every JSON value gets an answer, except notifications and answers to calls nobody made. */
  private dispatch(message: unknown): void {
    if (Array.isArray(message)) {
      this.invalid(null, 'batches (JSON arrays) are not supported; send one request object per line');
      return;
    }
    if (message === null || typeof message !== 'object') {
      this.invalid(null, `expected a JSON object, got ${message === null ? 'null' : typeof message}`);
      return;
    }
    const m = message as Record<string, unknown>;
    if ('method' in m) this.onCall(m);
    else if ('result' in m || 'error' in m) this.onAnswer(m);
    else this.invalid(isId(m.id) ? m.id : null, 'a request needs a method');
  }

  private onCall(m: Record<string, unknown>): void {
    const { id, method, params } = m;
    // A notification gets no answer, not even an error.
    if (!('id' in m)) {
      if (typeof method === 'string') this.onNotification(method, params);
      return;
    }
    if (!isId(id)) this.invalid(null, `id must be a number or a string, got ${id === null ? 'null' : Array.isArray(id) ? 'an array' : typeof id}`);
    else if (typeof method !== 'string') this.invalid(id, 'method must be a string');
    else void this.onRequest(id, method, params);
  }

  private onAnswer(m: Record<string, unknown>): void {
    const { id } = m;
    // An error without an id is about the connection (a refused message); it explains why the peer closes it.
    if (id === null && 'error' in m) {
      this.closeReason = errorFromWire(m.error);
      return;
    }
    if (typeof id !== 'number') return;
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    if ('error' in m) pending.reject(errorFromWire(m.error));
    else pending.resolve(m.result);
  }

  private invalid(id: number | string | null, message: string): void {
    this.send(errorMessage(id, INVALID_REQUEST, `invalid request: ${message}`, 'send one JSON-RPC 2.0 request object per line: {"jsonrpc":"2.0","id":1,"method":"...","params":{}}'));
  }

  private onNotification(method: string, params: unknown): void {
    const p = (typeof params === 'object' && params !== null ? params : {}) as Record<string, unknown>;
    if (method === '$/cancel') {
      if (isId(p.id)) this.running.get(p.id)?.abort();
    } else if (method === '$/progress') {
      const pending = typeof p.id === 'number' ? this.pending.get(p.id) : undefined;
      pending?.onProgress?.({ stage: String(p.stage ?? ''), message: String(p.message ?? '') });
    }
  }

  /** Never rejects: whatever the handler does, throwing included, becomes the answer. */
  private async onRequest(id: number | string, method: string, params: unknown): Promise<void> {
    const handler = this.handlers.get(method);
    if (!handler) {
      this.send(errorMessage(id, METHOD_NOT_FOUND, `unknown method ${method}`, 'check the method name; if it is right, the two ends run different banger versions: restart the server from the same install'));
      return;
    }
    const controller = new AbortController();
    this.running.set(id, controller);
    const ctx: CallContext = {
      signal: controller.signal,
      progress: (event) => this.notify('$/progress', { id, ...event }),
    };
    let line: string;
    try {
      // Called inside the try, so a handler that throws before returning its promise is answered too; the
      // result is encoded here so one JSON cannot hold (a BigInt, a cycle) is answered as a failure.
      const result: unknown = await handler(params, ctx);
      line = JSON.stringify({ jsonrpc: '2.0', id, result: result ?? null });
    } catch (err) {
      const wire = errorToWire(err);
      if (wire.data.code === 'INTERNAL') this.reportInternal(method, err);
      line = JSON.stringify({ jsonrpc: '2.0', id, error: wire });
    } finally {
      this.running.delete(id);
    }
    this.write(line);
  }

  private reportInternal(method: string, err: unknown): void {
    try {
      this.onInternalError?.(method, err);
    } catch {
      // A failing logger must not take the server down with it; the caller still gets its answer.
    }
  }

  /** Tells the peer why, then closes: used when its input cannot be read on. */
  private refuse(reason: BangerError): void {
    this.refusing = true;
    this.closeReason = reason;
    this.lines.clear();
    if (this.closed || this.socket.destroyed) return;
    const error: WireError = { code: INVALID_REQUEST, message: reason.message, data: reason.toData() };
    this.socket.end(`${JSON.stringify({ jsonrpc: '2.0', id: null, error })}\n`, () => this.socket.destroy());
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.lines.clear();
    for (const controller of this.running.values()) controller.abort();
    this.running.clear();
    const reason = this.closeReason;
    for (const pending of this.pending.values()) {
      const message = `the connection to ${this.peer.name} closed before ${pending.method} finished${reason ? `: ${reason.message}` : ''}`;
      pending.reject(this.unavailable(message, reason?.hint));
    }
    this.pending.clear();
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  private unavailable(message: string, hint = this.peer.hint): BangerError {
    return new BangerError(this.peer.unavailable, message, hint === undefined ? {} : { hint });
  }
}

function isId(value: unknown): value is number | string {
  return typeof value === 'number' || typeof value === 'string';
}

function errorMessage(id: number | string | null, code: number, message: string, hint: string): unknown {
  return { jsonrpc: '2.0', id, error: { code, message, data: { code: 'INVALID_ARGUMENT', hint } } };
}

function describeBytes(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : `${bytes} bytes`;
}

/** Messages carry their causes' messages, so a failed program's name and stderr reach the user however it was wrapped. */
function errorToWire(err: unknown): WireError {
  try {
    if (err instanceof BangerError) return { code: -32000, message: messageWithCauses(err), data: err.toData() };
    return { code: -32603, message: messageWithCauses(err), data: { code: 'INTERNAL' } };
  } catch {
    // Something thrown that cannot even be turned into text (an object without a prototype).
    return { code: -32603, message: 'the handler failed with a value that cannot be shown', data: { code: 'INTERNAL' } };
  }
}

function errorFromWire(raw: unknown): BangerError {
  const e = (raw ?? {}) as { message?: unknown; data?: { code?: unknown; hint?: unknown } };
  const message = typeof e.message === 'string' ? e.message : 'unknown error';
  const code = e.data?.code;
  const hint = typeof e.data?.hint === 'string' ? e.data.hint : undefined;
  return new BangerError(isErrorCode(code) ? code : 'INTERNAL', message, hint === undefined ? {} : { hint });
}

export interface ServeOptions {
  onConnection?: (c: RpcConnection) => void;
  /** See RpcConnectionOptions.onInternalError; the daemon logs these with their stacks. */
  onInternalError?: (method: string, err: unknown) => void;
  /** How clients know this server ("bangerd"), for the error that refuses a connection. */
  identity?: Peer;
  /** Connections served at once (default MAX_CONNECTIONS); more get an error line and are closed. */
  maxConnections?: number;
  /** The longest request line (default MAX_REQUEST_BYTES). */
  maxMessageBytes?: number;
}

/** Listen on a Unix socket path; each connection gets the same handlers. */
export function serve(server: net.Server, handlers: ReadonlyMap<string, Handler>, options: ServeOptions = {}): void {
  const maxConnections = options.maxConnections ?? MAX_CONNECTIONS;
  const identity = options.identity ?? UNKNOWN_PEER;
  let open = 0;
  server.on('connection', (socket) => {
    if (open >= maxConnections) {
      refuseConnection(socket, new BangerError(identity.unavailable, `${identity.name} is already serving ${maxConnections} connections; this one is refused`, {
        hint: 'close other banger clients of it, or wait for them to finish, and try again',
      }));
      return;
    }
    open++;
    socket.once('close', () => open--);
    const connection = new RpcConnection(socket, {
      handlers,
      maxMessageBytes: options.maxMessageBytes ?? MAX_REQUEST_BYTES,
      ...(options.onInternalError ? { onInternalError: options.onInternalError } : {}),
    });
    options.onConnection?.(connection);
  });
}

/** Writes why and closes, without reading anything the peer sends. */
function refuseConnection(socket: net.Socket, reason: BangerError): void {
  // Without a listener, a socket error (the peer already gone) would be thrown out of the server.
  socket.on('error', () => socket.destroy());
  socket.end(`${JSON.stringify({ jsonrpc: '2.0', id: null, error: errorToWire(reason) })}\n`, () => socket.destroy());
}

/** Connects to a server; `peer` names it in the error a call gets when the connection closes under it. */
export function connect(socketPath: string, options: { peer?: Peer } = {}): Promise<RpcConnection> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('connect', () => {
      socket.removeListener('error', reject);
      resolve(new RpcConnection(socket, { peer: options.peer }));
    });
    socket.once('error', reject);
  });
}
