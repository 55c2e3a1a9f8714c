// `vm ports`: the guest agent's socket list, merged into one row per listener, with TCP listeners probed for
// HTTPS and then HTTP through the agent (so probes work whatever network namespace the guest lives in).
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import type { ForwardInfo, GuestPort } from '../../protocol/methods.ts';

/** One socket as the agent reports it (agent/PROTOCOL.md, `ports`). */
export interface AgentSocket {
  proto: 'tcp' | 'udp';
  family: 4 | 6;
  address: string;
  port: number;
  pid: number | null;
  process: string | null;
  cmdline: string[] | null;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);
const LOOPBACKS = new Set(['127.0.0.1', '::1']);
/** How long one probe may take; a listener that says nothing in that time is plain TCP. */
export const PROBE_TIMEOUT_MS = 1500;

/** Checks the agent's answer field by field; anything malformed is dropped rather than shown. */
export function parseAgentSockets(raw: unknown): AgentSocket[] {
  const list = (raw as { sockets?: unknown } | null)?.sockets;
  if (!Array.isArray(list)) return [];
  const out: AgentSocket[] = [];
  for (const s of list.slice(0, 4096)) {
    if (s === null || typeof s !== 'object') continue;
    const v = s as Record<string, unknown>;
    if ((v.proto !== 'tcp' && v.proto !== 'udp') || (v.family !== 4 && v.family !== 6)) continue;
    if (!Number.isInteger(v.port) || (v.port as number) < 0 || (v.port as number) > 65535 || typeof v.address !== 'string') continue;
    out.push({
      proto: v.proto, family: v.family, address: v.address.slice(0, 64), port: v.port as number,
      pid: Number.isInteger(v.pid) ? (v.pid as number) : null,
      process: typeof v.process === 'string' ? v.process.slice(0, 64) : null,
      cmdline: Array.isArray(v.cmdline) ? v.cmdline.filter((a): a is string => typeof a === 'string').slice(0, 256) : null,
    });
  }
  return out;
}

/**
 * One row per listener: a dual-stack listener (0.0.0.0 and :: on one port, one process) shows once, with both
 * addresses. UDP port 0 and ephemeral client sockets are the agent's business; rows come sorted by proto, port.
 */
export function mergeListeners(vmName: string, sockets: readonly AgentSocket[], forwards: readonly ForwardInfo[]): GuestPort[] {
  const rows = new Map<string, GuestPort>();
  for (const s of sockets) {
    if (s.port === 0) continue;
    const key = `${s.proto}/${s.port}/${s.pid ?? '-'}`;
    const row = rows.get(key);
    if (row) {
      if (!row.addresses.includes(s.address)) row.addresses.push(s.address);
      continue;
    }
    rows.set(key, {
      proto: s.proto, port: s.port, addresses: [s.address], endpoint: `${vmName}.vm:${s.port}`, kind: s.proto, pid: s.pid, process: s.process,
      command: s.cmdline && s.cmdline.length > 0 ? s.cmdline.join(' ') : null,
      forwardedFrom: s.proto === 'tcp' ? forwards.filter((f) => f.guestPort === s.port).map((f) => f.hostPort) : [],
    });
  }
  return [...rows.values()].sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port);
}

/** Where a probe (or a forward) connects for a listener: loopback when it listens on all addresses or loopback. */
export function connectHostFor(addresses: readonly string[]): string {
  if (addresses.some((a) => WILDCARDS.has(a) || a === '127.0.0.1')) return '127.0.0.1';
  if (addresses.includes('::1')) return '::1';
  return addresses.find((a) => !LOOPBACKS.has(a)) ?? '127.0.0.1';
}

/**
 * What a TCP listener speaks. HTTPS is tried first: a TLS server answers a plain HTTP request with an error
 * page that would make it look like HTTP. `open` gives a fresh connection to the listener for each try.
 */
export async function probeListener(open: () => Duplex, serverName: string, timeoutMs = PROBE_TIMEOUT_MS): Promise<'https' | 'http' | 'tcp'> {
  if (await speaksTls(open(), serverName, timeoutMs)) return 'https';
  if (await speaksHttp(open(), serverName, timeoutMs)) return 'http';
  return 'tcp';
}

function speaksTls(socket: Duplex, serverName: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    // Only "does it complete a TLS handshake" matters here; the certificate is the guest's own business.
    const conn = tls.connect({ socket, servername: serverName, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      conn.destroy();
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    conn.once('secureConnect', () => done(true));
    conn.once('error', () => done(false));
    conn.once('close', () => done(false));
  });
}

function speaksHttp(socket: Duplex, serverName: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let got = Buffer.alloc(0);
    const done = (answer: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= 5) done(got.subarray(0, 5).toString('latin1') === 'HTTP/');
    });
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
    socket.write(`HEAD / HTTP/1.0\r\nHost: ${serverName}\r\nUser-Agent: banger-ports\r\n\r\n`);
  });
}

/** The endpoint a row shows once its kind is known. */
export function endpointFor(vmName: string, kind: GuestPort['kind'], port: number): string {
  return kind === 'http' || kind === 'https' ? `${kind}://${vmName}.vm:${port}` : `${vmName}.vm:${port}`;
}
