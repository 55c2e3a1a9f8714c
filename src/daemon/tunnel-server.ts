// bangerd's second socket, for byte streams that JSON-RPC lines do not suit: a TCP connection into a guest
// (the `.vm` ssh ProxyCommand) and a command run by the guest agent (`vm exec` without sshd). A client sends
// one JSON line, gets one JSON line back ({"ok":true} or {"ok":false,"error":{...}}), and then the stream:
// raw bytes for `connect`, agent frames (agent/PROTOCOL.md: stdin/stdout/stderr data, eof, signal, exit) for
// `exec`.
import net from 'node:net';
import { z } from 'zod';
import { BangerError, messageOf } from '../protocol/errors.ts';
import { encodeFrame, FrameReader, type FrameHeader } from '../protocol/agent-frames.ts';
import { FirstLineError, readFirstLine } from '../protocol/first-line.ts';
import type { ImageRunConfig, VmInfo } from '../protocol/methods.ts';
import type { AgentService } from './services/agent-service.ts';
import type { AgentClient } from '../vmm/agent-client.ts';
import { pipeToGuest } from './services/agent-pipe.ts';
import { notRunningError } from './services/vm-errors.ts';

const MAX_REQUEST_BYTES = 256 * 1024;

export const tunnelRequestSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('connect'), vm: z.string().min(1).max(64), port: z.int().min(1).max(65535) }),
  z.strictObject({
    op: z.literal('exec'),
    vm: z.string().min(1).max(64),
    argv: z.array(z.string().max(128 * 1024)).min(1).max(4096),
    cwd: z.string().startsWith('/').max(4096).optional(),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).max(256), z.string().max(128 * 1024)).optional(),
    stdin: z.boolean().optional(),
    timeoutMs: z.int().min(0).max(7 * 24 * 3600 * 1000).optional(),
  }),
]);
export type TunnelRequest = z.infer<typeof tunnelRequestSchema>;

export interface TunnelDeps {
  agents: Pick<AgentService, 'require'>;
  /** The VM by name or id, refreshed. */
  show(ref: string): VmInfo;
  /** What the VM's image config says about running commands (OCI images), or null. */
  runConfig(vm: VmInfo): ImageRunConfig | null;
  log(message: string): void;
}

/** Serves tunnel connections on `server` (a Unix socket only the owner can open). */
export function serveTunnels(server: net.Server, deps: TunnelDeps): void {
  server.on('connection', (socket) => {
    socket.on('error', () => undefined);
    readFirstLine(socket, MAX_REQUEST_BYTES).then(
      (line) => start(socket, line.toString('utf8'), deps),
      (err: FirstLineError) => {
        if (err.reason === 'too-long') refuse(socket, new BangerError('INVALID_ARGUMENT', `tunnel request longer than ${MAX_REQUEST_BYTES} bytes`));
      },
    );
  });
}

async function start(socket: net.Socket, line: string, deps: TunnelDeps): Promise<void> {
  let request: TunnelRequest;
  let vm: VmInfo;
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new BangerError('INVALID_ARGUMENT', 'tunnel request is not JSON');
    }
    const parsed = tunnelRequestSchema.safeParse(raw);
    if (!parsed.success) throw new BangerError('INVALID_ARGUMENT', `invalid tunnel request: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
    request = parsed.data;
    vm = deps.show(request.vm);
    if (vm.state !== 'running') {
      throw notRunningError(vm);
    }
  } catch (err) {
    refuse(socket, err);
    return;
  }
  let client;
  try {
    client = await deps.agents.require(vm);
  } catch (err) {
    refuse(socket, err);
    return;
  }
  socket.write(`${JSON.stringify({ ok: true })}\n`);
  if (request.op === 'connect') {
    await pipeToGuest(client, socket, { host: '127.0.0.1', port: request.port }, (m) => deps.log(`vm ${vm.name}: ${m}`));
    return;
  }
  relayExec(socket, client, request, vm, deps.runConfig(vm));
}

/**
 * The exec request for the agent: the image's Env under the caller's, the caller's directory else the
 * workspace else the image's WorkingDir, and the image's User.
 */
export function agentExecParams(request: Extract<TunnelRequest, { op: 'exec' }>, vm: VmInfo, run: ImageRunConfig | null): Record<string, unknown> {
  const env: Record<string, string> = {};
  for (const entry of run?.env ?? []) {
    const eq = entry.indexOf('=');
    env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return {
    argv: request.argv, env: { ...env, ...request.env }, cwd: request.cwd ?? vm.workspace?.dir ?? run?.workingDir ?? '/root', stdin: request.stdin === true,
    timeoutMs: request.timeoutMs ?? 0, ...(run && (run.uid !== 0 || run.gid !== 0) ? { uid: run.uid, gid: run.gid } : {}),
  };
}

function relayExec(socket: net.Socket, client: AgentClient, request: Extract<TunnelRequest, { op: 'exec' }>, vm: VmInfo, run: ImageRunConfig | null): void {
  let finished = false;
  const send = (header: FrameHeader, payload?: Buffer, written?: () => void): void => {
    if (!socket.destroyed) socket.write(encodeFrame(header, payload), written);
  };
  const stream = client.open('exec', agentExecParams(request, vm, run), (frame) => {
    const h = frame.header;
    if (h.t === 'data') {
      // Acknowledged once the client's socket took it: a slow reader slows the guest's process down.
      send({ t: 'data', id: 1, ch: String(h.ch) }, frame.payload, () => stream.ack(String(h.ch), frame.payload.length));
    } else if (h.t === 'started') send({ t: 'started', id: 1, pid: Number(h.pid ?? 0) });
  });
  stream.done.then(
    (h) => {
      finished = true;
      send({ t: 'exit', id: 1, code: h.code ?? null, signal: h.signal ?? null, timedOut: h.timedOut === true });
      socket.end();
    },
    (err: unknown) => {
      finished = true;
      const e = err instanceof Error && 'agentCode' in err ? { code: String((err as { agentCode: string }).agentCode), message: err.message } : { code: 'UNAVAILABLE', message: messageOf(err) };
      send({ t: 'error', id: 1, ...e });
      socket.end();
    },
  );
  const reader = new FrameReader();
  // The stream keeps writes and the eof in order; this only stops reading while the guest has no room.
  let lastWrite: Promise<void> | null = null;
  socket.on('data', (chunk: Buffer) => {
    for (const { header: h, payload } of reader.push(chunk)) {
      if (h.t === 'data' && h.ch === 'stdin') {
        socket.pause();
        const write = stream.write('stdin', payload);
        lastWrite = write;
        void write.then(() => {
          if (lastWrite === write) socket.resume();
        });
      } else if (h.t === 'eof' && h.ch === 'stdin') stream.end('stdin');
      else if (h.t === 'signal' && typeof h.signal === 'string') stream.control({ t: 'signal', signal: h.signal });
    }
  });
  // A client that goes away (Ctrl-C twice, a closed pipe) takes its command with it.
  socket.on('close', () => {
    if (!finished) stream.cancel();
  });
  socket.resume();
}

function refuse(socket: net.Socket, err: unknown): void {
  const e = err instanceof BangerError ? err : new BangerError('INTERNAL', messageOf(err));
  socket.end(`${JSON.stringify({ ok: false, error: { code: e.code, message: e.message, ...(e.hint ? { hint: e.hint } : {}) } })}\n`);
}
