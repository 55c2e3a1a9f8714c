// JSON-RPC 2.0 over a stream socket, one JSON object per line. Used between CLI/SDK and bangerd, and between
// bangerd and bangerd-root. Long calls report progress with `$/progress` notifications tied to the request id,
// and a caller cancels with `$/cancel` or simply by closing the socket.
import net from 'node:net';
import { BangerError, isErrorCode, messageWithCauses, type ErrorCode, type ErrorData } from './errors.ts';

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
}

const UNKNOWN_PEER: Peer = { name: 'the server', unavailable: 'DAEMON_UNAVAILABLE' };

interface Pending {
  method: string;
  resolve(value: unknown): void;
  reject(err: Error): void;
  onProgress: ((event: ProgressEvent) => void) | undefined;
}

const MAX_LINE = 16 * 1024 * 1024;

/** One end of a connection. Both ends may serve handlers; in practice the client only calls. */
export class RpcConnection {
  private readonly socket: net.Socket;
  private readonly handlers: ReadonlyMap<string, Handler>;
  private readonly peer: Peer;
  private readonly onInternalError: ((method: string, err: unknown) => void) | undefined;
  private readonly pending = new Map<number, Pending>();
  private readonly running = new Map<number | string, AbortController>();
  private nextId = 1;
  private buffer = '';
  private closed = false;
  private readonly closeListeners: Array<() => void> = [];

  constructor(socket: net.Socket, options: RpcConnectionOptions = {}) {
    this.socket = socket;
    this.handlers = options.handlers ?? new Map();
    this.peer = options.peer ?? UNKNOWN_PEER;
    this.onInternalError = options.onInternalError;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', () => this.onClose());
    socket.on('close', () => this.onClose());
  }

  onClosed(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  call<T>(method: string, params: unknown, options: { signal?: AbortSignal; onProgress?: (e: ProgressEvent) => void } = {}): Promise<T> {
    if (this.closed) return Promise.reject(this.unavailable(`the connection to ${this.peer.name} is closed`));
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
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(`${JSON.stringify(message)}\n`);
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    if (this.buffer.length > MAX_LINE && !this.buffer.includes('\n')) {
      this.socket.destroy(new Error('message too large'));
      return;
    }
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      if (line.trim() === '') continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        this.send({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
        continue;
      }
      this.dispatch(message);
    }
  }

  private dispatch(message: Record<string, unknown>): void {
    const { id, method } = message;
    if (typeof method === 'string') {
      if (id === undefined) this.onNotification(method, message.params);
      else if (typeof id === 'number' || typeof id === 'string') void this.onRequest(id, method, message.params);
      return;
    }
    if (typeof id !== 'number') return;
    const pending = this.pending.get(id);
    if (!pending) return;
    this.pending.delete(id);
    if ('error' in message) pending.reject(errorFromWire(message.error));
    else pending.resolve(message.result);
  }

  private onNotification(method: string, params: unknown): void {
    const p = (params ?? {}) as Record<string, unknown>;
    if (method === '$/cancel') {
      this.running.get(p.id as number | string)?.abort();
    } else if (method === '$/progress') {
      const pending = this.pending.get(p.id as number);
      pending?.onProgress?.({ stage: String(p.stage ?? ''), message: String(p.message ?? '') });
    }
  }

  private async onRequest(id: number | string, method: string, params: unknown): Promise<void> {
    const handler = this.handlers.get(method);
    if (!handler) {
      this.send({ jsonrpc: '2.0', id, error: { code: -32601, message: `unknown method ${method}` } });
      return;
    }
    const controller = new AbortController();
    this.running.set(id, controller);
    const ctx: CallContext = {
      signal: controller.signal,
      progress: (event) => this.notify('$/progress', { id, ...event }),
    };
    try {
      const result = await handler(params, ctx);
      this.send({ jsonrpc: '2.0', id, result: result ?? null });
    } catch (err) {
      const wire = errorToWire(err);
      if (wire.data?.code === 'INTERNAL') this.onInternalError?.(method, err);
      this.send({ jsonrpc: '2.0', id, error: wire });
    } finally {
      this.running.delete(id);
    }
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.running.values()) controller.abort();
    for (const pending of this.pending.values()) {
      pending.reject(this.unavailable(`the connection to ${this.peer.name} closed before ${pending.method} finished`));
    }
    this.pending.clear();
    for (const listener of this.closeListeners) listener();
  }

  private unavailable(message: string): BangerError {
    return new BangerError(this.peer.unavailable, message, this.peer.hint === undefined ? {} : { hint: this.peer.hint });
  }
}

/** Messages carry their causes' messages, so a failed program's name and stderr reach the user however it was wrapped. */
function errorToWire(err: unknown): { code: number; message: string; data: ErrorData } {
  if (err instanceof BangerError) return { code: -32000, message: messageWithCauses(err), data: err.toData() };
  return { code: -32603, message: messageWithCauses(err), data: { code: 'INTERNAL' } };
}

function errorFromWire(raw: unknown): Error {
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
}

/** Listen on a Unix socket path; each connection gets the same handlers. */
export function serve(server: net.Server, handlers: ReadonlyMap<string, Handler>, options: ServeOptions = {}): void {
  server.on('connection', (socket) => {
    const connection = new RpcConnection(socket, { handlers, onInternalError: options.onInternalError });
    options.onConnection?.(connection);
  });
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
