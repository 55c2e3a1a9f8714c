// bangerd's end of one connection to a guest agent (agent/PROTOCOL.md): the hello, unary requests with
// timeouts, and streams (exec, connect, put, get) with per-stream flow control, all multiplexed on one byte
// stream, because a virtio-serial port serves one connection at a time.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { BangerError } from '../protocol/errors.ts';
import {
  AGENT_PROTOCOL_VERSION, encodeFrame, FrameReader, payloadChunks, STREAM_WINDOW_BYTES, type Frame, type FrameHeader,
} from '../protocol/agent-frames.ts';
import type { Clock } from '../system/clock.ts';

export interface AgentHello {
  version: number;
  agentVersion: string;
  bootId: string;
  pid: number;
}

/** An `error` answer from the agent, with its code (NOT_FOUND, CONNREFUSED, ...). */
export class AgentError extends Error {
  readonly agentCode: string;
  constructor(agentCode: string, message: string) {
    super(message);
    this.name = 'AgentError';
    this.agentCode = agentCode;
  }
}

/** The connection ended, the agent restarted, or it did not answer in time. */
export class AgentUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentUnavailable';
  }
}

export interface AgentClientOptions {
  clock: Clock;
  /** How long one hello may take before it is sent again (a serial port may have eaten the first). */
  helloRetryMs?: number;
  log?(message: string): void;
}

interface StreamState {
  onFrame(frame: Frame): void;
  final(header: FrameHeader | Error): void;
  /** Bytes sent per channel and not yet acknowledged, and who waits for room. */
  inFlight: Map<string, number>;
  waiters: Array<() => void>;
  /** Writes and ends, in the order they were asked for: an eof must not overtake data still waiting for room. */
  queue: Promise<void>;
}

/** One stream of a request: frames as they come, a way to send, and the final answer. */
export interface AgentStream {
  readonly id: number;
  /** Sends `data` on `ch`, waiting for window room, in frames of at most 64 KiB. */
  write(ch: string, data: Buffer): Promise<void>;
  end(ch: string): void;
  /** Tells the agent that `n` more bytes of `ch` were consumed. */
  ack(ch: string, n: number): void;
  control(header: Omit<FrameHeader, 'id'>): void;
  cancel(): void;
  /** The final answer: `ok`/`exit` header, or rejects with AgentError / AgentUnavailable. */
  readonly done: Promise<FrameHeader>;
}

export class AgentClient {
  private readonly socket: Duplex;
  private readonly options: AgentClientOptions;
  private readonly reader = new FrameReader();
  private readonly streams = new Map<number, StreamState>();
  private nextId = 1;
  private closedReason: string | null = null;
  private readonly closeListeners: Array<(reason: string) => void> = [];
  private helloNonce: string | null = null;
  private helloWaiter: ((hello: AgentHello) => void) | null = null;
  hello: AgentHello | null = null;

  constructor(socket: Duplex, options: AgentClientOptions) {
    this.socket = socket;
    this.options = options;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.shutdown(`connection error: ${err.message}`));
    socket.on('close', () => this.shutdown('the connection closed'));
  }

  get closed(): boolean {
    return this.closedReason !== null;
  }

  onClose(listener: (reason: string) => void): void {
    if (this.closedReason !== null) listener(this.closedReason);
    else this.closeListeners.push(listener);
  }

  /**
   * Says hello until the agent answers with our nonce; bytes before that answer are leftovers of an earlier
   * connection and are dropped. Rejects with AgentUnavailable after `timeoutMs` or when `signal` fires.
   */
  async handshake(timeoutMs: number, signal?: AbortSignal): Promise<AgentHello> {
    const { clock } = this.options;
    const retry = this.options.helloRetryMs ?? 1000;
    const deadline = clock.now() + timeoutMs;
    const answered = new Promise<AgentHello>((resolve) => {
      this.helloWaiter = resolve;
    });
    let hello: AgentHello | undefined;
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      while (!hello) {
        if (this.closedReason !== null) throw new AgentUnavailable(`the agent connection ended: ${this.closedReason}`);
        if (signal?.aborted) throw new BangerError('CANCELLED', 'cancelled while waiting for the guest agent');
        const left = deadline - clock.now();
        if (left <= 0) throw new AgentUnavailable(`the guest agent did not answer within ${Math.round(timeoutMs / 1000)}s`);
        this.helloNonce = randomBytes(8).toString('hex');
        this.send({ t: 'hello', id: this.nextId++, version: AGENT_PROTOCOL_VERSION, nonce: this.helloNonce });
        const pause = new AbortController();
        const onStop = (): void => pause.abort();
        stop.signal.addEventListener('abort', onStop, { once: true });
        const closed = new Promise<undefined>((resolve) => this.onClose(() => resolve(undefined)));
        hello = await Promise.race([answered, clock.sleep(Math.min(retry, left), pause.signal).then(() => undefined), closed]);
        pause.abort();
        stop.signal.removeEventListener('abort', onStop);
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.helloWaiter = null;
    }
    this.hello = hello;
    return hello;
  }

  /** A request with one answer; its `r` field, or AgentError / AgentUnavailable. */
  async request<T>(t: string, fields: Record<string, unknown>, options: { timeoutMs: number; signal?: AbortSignal }): Promise<T> {
    const stream = this.open(t, fields, () => undefined);
    const { clock } = this.options;
    const timer = new AbortController();
    const onAbort = (): void => timer.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const timeout = clock.sleep(options.timeoutMs, timer.signal).then(() => null);
      const header = await Promise.race([stream.done, timeout]);
      if (header === null) {
        stream.cancel();
        if (options.signal?.aborted) throw new BangerError('CANCELLED', `${t} cancelled`);
        throw new AgentUnavailable(`the guest agent did not answer ${t} within ${Math.round(options.timeoutMs / 1000)}s`);
      }
      return (header.r ?? {}) as T;
    } finally {
      timer.abort();
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Starts a request whose frames go to `onFrame` until its final answer. */
  open(t: string, fields: Record<string, unknown>, onFrame: (frame: Frame) => void): AgentStream {
    const id = this.nextId++;
    let settle!: (header: FrameHeader | Error) => void;
    const done = new Promise<FrameHeader>((resolve, reject) => {
      settle = (h) => {
        if (h instanceof Error) reject(h);
        else if (h.t === 'error') reject(new AgentError(String(h.code ?? 'INTERNAL'), String(h.message ?? 'the agent failed')));
        else resolve(h);
      };
    });
    // A caller that only awaits later must not see an unhandled rejection meanwhile.
    done.catch(() => undefined);
    const state: StreamState = {
      onFrame,
      final: (h) => {
        this.streams.delete(id);
        for (const wake of state.waiters.splice(0)) wake();
        settle(h);
      },
      inFlight: new Map(),
      waiters: [],
      queue: Promise.resolve(),
    };
    if (this.closedReason !== null) {
      state.final(new AgentUnavailable(`the agent connection ended: ${this.closedReason}`));
    } else {
      this.streams.set(id, state);
      this.send({ ...fields, t, id });
    }
    return {
      id,
      done,
      write: (ch, data) => this.enqueue(state, () => this.write(id, state, ch, data)),
      end: (ch) => void this.enqueue(state, async () => this.sendIfOpen(id, { t: 'eof', id, ch })),
      ack: (ch, n) => {
        if (n > 0) this.sendIfOpen(id, { t: 'ack', id, ch, n });
      },
      control: (header) => this.sendIfOpen(id, { ...header, id } as FrameHeader),
      cancel: () => this.sendIfOpen(id, { t: 'cancel', id }),
    };
  }

  close(): void {
    this.socket.destroy();
    this.shutdown('closed by bangerd');
  }

  private enqueue(state: StreamState, step: () => Promise<void>): Promise<void> {
    const next = state.queue.then(step);
    state.queue = next.catch(() => undefined);
    return next;
  }

  private async write(id: number, state: StreamState, ch: string, data: Buffer): Promise<void> {
    for (const chunk of payloadChunks(data)) {
      while (this.streams.has(id) && (state.inFlight.get(ch) ?? 0) + chunk.length > STREAM_WINDOW_BYTES) {
        await new Promise<void>((resolve) => state.waiters.push(resolve));
      }
      if (!this.streams.has(id)) return;
      state.inFlight.set(ch, (state.inFlight.get(ch) ?? 0) + chunk.length);
      this.send({ t: 'data', id, ch }, chunk);
    }
  }

  private sendIfOpen(id: number, header: FrameHeader): void {
    if (this.streams.has(id)) this.send(header);
  }

  private send(header: FrameHeader, payload?: Buffer): void {
    if (this.closedReason !== null || this.socket.destroyed) return;
    this.socket.write(encodeFrame(header, payload));
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.reader.push(chunk)) this.onFrame(frame);
  }

  private onFrame(frame: Frame): void {
    const h = frame.header;
    if (h.t === 'ready') {
      // The agent (re)opened its end: whatever was asked of the old one is lost.
      if (this.hello) this.failAll('the guest agent restarted');
      return;
    }
    if (h.t === 'ok' && this.helloWaiter && isHelloAnswer(h.r, this.helloNonce)) {
      this.streams.delete(h.id);
      this.helloWaiter(h.r);
      return;
    }
    const stream = this.streams.get(h.id);
    if (!stream) return;
    if (h.t === 'ack') {
      const ch = String(h.ch);
      stream.inFlight.set(ch, Math.max(0, (stream.inFlight.get(ch) ?? 0) - Number(h.n ?? 0)));
      for (const wake of stream.waiters.splice(0)) wake();
      return;
    }
    if (h.t === 'ok' || h.t === 'error' || h.t === 'exit') {
      stream.final(h);
      return;
    }
    stream.onFrame(frame);
  }

  private failAll(reason: string): void {
    for (const stream of [...this.streams.values()]) stream.final(new AgentUnavailable(reason));
  }

  private shutdown(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    this.failAll(`the agent connection ended: ${reason}`);
    for (const listener of this.closeListeners.splice(0)) listener(reason);
  }
}

function isHelloAnswer(r: unknown, nonce: string | null): r is AgentHello {
  if (r === null || typeof r !== 'object' || nonce === null) return false;
  const v = r as Record<string, unknown>;
  return v.nonce === nonce && typeof v.version === 'number' && typeof v.agentVersion === 'string' && typeof v.bootId === 'string';
}
