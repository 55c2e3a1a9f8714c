// Joins a host socket to a TCP connection the guest agent opens inside the guest: what `vm forward`, the
// `.vm` ssh ProxyCommand and port probes ride on. Works wherever the guest's network lives (even in another
// network namespace), because the bytes travel over the agent's channel, not the host's network.
import type { Duplex } from 'node:stream';
import { duplexPair } from 'node:stream';
import { messageOf } from '../../protocol/errors.ts';
import type { AgentClient } from '../../vmm/agent-client.ts';

export interface GuestConnectTarget {
  /** An IP literal inside the guest; 127.0.0.1 reaches everything that listens on all addresses. */
  host: string;
  port: number;
}

/**
 * Pipes `socket` to `target` in the guest until either side closes, honouring both directions' half-close.
 * A refused connection resets `socket` (the closest a forward can come to passing "connection refused" on).
 * Resolves when both are done; never rejects.
 */
export function pipeToGuest(client: AgentClient, socket: Duplex & { resetAndDestroy?: () => void }, target: GuestConnectTarget, log?: (m: string) => void): Promise<void> {
  return new Promise((resolve) => {
    let started = false;
    socket.pause();
    const stream = client.open('connect', { host: target.host, port: target.port }, (frame) => {
      const h = frame.header;
      if (h.t === 'started') {
        started = true;
        socket.resume();
      } else if (h.t === 'data' && h.ch === 'conn') {
        // Acknowledged once the host side took it, so a slow reader slows the guest, not bangerd's memory.
        socket.write(frame.payload, () => stream.ack('conn', frame.payload.length));
      } else if (h.t === 'eof' && h.ch === 'conn') {
        socket.end();
      }
    });
    socket.on('data', (chunk: Buffer) => {
      socket.pause();
      void stream.write('conn', chunk).then(() => socket.resume());
    });
    socket.on('end', () => stream.end('conn'));
    socket.on('error', () => undefined);
    socket.on('close', () => stream.cancel());
    stream.done.then(
      () => {
        socket.end();
        resolve();
      },
      (err: unknown) => {
        if (!started) log?.(`guest connection to ${target.host}:${target.port} failed: ${messageOf(err)}`);
        try {
          // A TCP client sees a reset, the closest a forward comes to "connection refused".
          if (socket.resetAndDestroy) socket.resetAndDestroy();
          else socket.destroy();
        } catch {
          // Only TCP sockets can be reset (a Unix socket, say); closing is what is left.
          socket.destroy();
        }
        resolve();
      },
    );
  });
}

/** A duplex stream to `target` in the guest, for code that speaks a protocol over it (the HTTP probes). */
export function guestDuplex(client: AgentClient, target: GuestConnectTarget): Duplex {
  const [ours, theirs] = duplexPair();
  void pipeToGuest(client, theirs, target);
  return ours;
}
