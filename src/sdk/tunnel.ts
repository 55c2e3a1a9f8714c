// Byte streams into guests through bangerd's tunnel socket (src/daemon/tunnel-server.ts): a TCP connection
// opened inside the guest, or a command run by the guest agent with its stdin, stdout, stderr and exit status.
import net from 'node:net';
import os from 'node:os';
import { BangerError, isErrorCode } from '../protocol/errors.ts';
import { encodeFrame, FrameReader, payloadChunks } from '../protocol/agent-frames.ts';
import { FirstLineError, readFirstLine } from '../protocol/first-line.ts';
import { resolvePaths } from '../system/paths.ts';

export interface TunnelOptions {
  /** bangerd's tunnel socket; the one for BANGER_HOME, else /run/banger (root) or the state dir's run/, by default. */
  socketPath?: string;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** Sends the request line and resolves with the socket once bangerd said yes; its refusal becomes a BangerError. */
function openTunnel(request: Record<string, unknown>, options: TunnelOptions): Promise<net.Socket> {
  const socketPath = options.socketPath ?? resolvePaths().tunnelSocket;
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    const unreachable = (err: Error): void => fail(new BangerError('DAEMON_UNAVAILABLE', `cannot reach bangerd's tunnel socket ${socketPath}: ${err.message}`, {
      hint: 'start it: banger daemon start', cause: err,
    }));
    socket.once('error', unreachable);
    socket.once('connect', () => {
      socket.removeListener('error', unreachable);
      socket.write(`${JSON.stringify(request)}\n`);
      readFirstLine(socket, MAX_ANSWER_BYTES).then((line) => {
        let answer: { ok?: unknown; error?: { code?: unknown; message?: unknown; hint?: unknown } };
        try {
          answer = JSON.parse(line.toString('utf8')) as typeof answer;
        } catch {
          fail(new BangerError('INTERNAL', 'bangerd answered the tunnel request with something that is not JSON'));
          return;
        }
        if (answer.ok !== true) {
          const e = answer.error ?? {};
          fail(new BangerError(isErrorCode(e.code) ? e.code : 'INTERNAL', String(e.message ?? 'bangerd refused the tunnel'), typeof e.hint === 'string' ? { hint: e.hint } : {}));
          return;
        }
        resolve(socket);
      }, (err: FirstLineError) => {
        fail(err.reason === 'too-long' ? new BangerError('INTERNAL', 'bangerd sent no answer line on the tunnel socket')
          : new BangerError('DAEMON_UNAVAILABLE', `bangerd's tunnel socket ${socketPath} ${err.reason === 'closed' ? 'closed before answering' : `failed: ${err.message}`}`, {
            hint: 'see whether bangerd runs: banger daemon status',
          }));
      });
    });
  });
}

/**
 * A TCP connection to `port` inside a running VM (its loopback), whatever network the VM lives in. The socket comes
 * paused, so no byte is lost before the caller listens: pipe it, or call resume() after adding a 'data' listener.
 */
export function connectGuestPort(vm: string, port: number, options: TunnelOptions = {}): Promise<net.Socket> {
  return openTunnel({ op: 'connect', vm, port }, options);
}

export interface AgentExecOptions extends TunnelOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Sent to the command's stdin; it gets /dev/null when not given. */
  stdin?: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** Forwarded to the command's process group while it runs. */
  signals?: { on(event: 'signal', fn: (name: string) => void): void };
  timeoutMs?: number;
}

export interface AgentExecResult {
  /** The command's exit status; 128 + the signal's number when a signal ended it (as a shell reports it). */
  code: number;
  signal: string | null;
  timedOut: boolean;
}


/** Runs `argv` in a running VM through its guest agent (no sshd needed), streaming its output. */
export async function execInGuest(vm: string, argv: string[], options: AgentExecOptions): Promise<AgentExecResult> {
  const socket = await openTunnel({
    op: 'exec', vm, argv, stdin: options.stdin !== undefined,
    ...(options.cwd ? { cwd: options.cwd } : {}), ...(options.env ? { env: options.env } : {}), ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
  }, options);
  return new Promise((resolve, reject) => {
    const reader = new FrameReader();
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      options.stdin?.removeListener('data', onStdin);
      fn();
    };
    socket.on('data', (chunk: Buffer) => {
      for (const { header: h, payload } of reader.push(chunk)) {
        if (h.t === 'data') {
          const out = h.ch === 'stderr' ? options.stderr : options.stdout;
          // Stop reading while the terminal or pipe catches up; bangerd and the guest wait with us.
          if (!out.write(payload)) {
            socket.pause();
            out.once('drain', () => socket.resume());
          }
        } else if (h.t === 'exit') {
          const signal = typeof h.signal === 'string' ? h.signal : null;
          const code = typeof h.code === 'number' ? h.code : 128 + (signal ? (os.constants.signals[`SIG${signal}` as NodeJS.Signals] ?? 0) : 0);
          settle(() => resolve({ code, signal, timedOut: h.timedOut === true }));
        } else if (h.t === 'error') {
          const message = String(h.message ?? 'the guest agent failed');
          const code = h.code === 'UNAVAILABLE' ? 'AGENT_UNAVAILABLE' : 'AGENT_FAILED';
          settle(() => reject(new BangerError(code, `${argv[0]}: ${message}`, h.code === 'NOT_FOUND' ? { hint: 'check the program name and PATH in the guest' } : {})));
        }
      }
    });
    socket.on('close', () => settle(() => reject(new BangerError('DAEMON_UNAVAILABLE', 'bangerd closed the tunnel before the command finished'))));
    socket.on('error', () => undefined);
    const onStdin = (chunk: Buffer | string): void => {
      let ok = true;
      for (const piece of payloadChunks(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))) ok = socket.write(encodeFrame({ t: 'data', id: 1, ch: 'stdin' }, piece));
      if (!ok) {
        options.stdin!.pause();
        socket.once('drain', () => options.stdin!.resume());
      }
    };
    if (options.stdin) {
      options.stdin.on('data', onStdin);
      options.stdin.once('end', () => socket.write(encodeFrame({ t: 'eof', id: 1, ch: 'stdin' })));
    }
    options.signals?.on('signal', (name) => socket.write(encodeFrame({ t: 'signal', id: 1, signal: name })));
    socket.resume();
  });
}
