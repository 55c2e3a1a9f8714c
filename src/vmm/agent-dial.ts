// How bangerd reaches a guest agent's byte stream, per VMM transport: QEMU serves the virtio-serial port on a
// Unix socket; Firecracker multiplexes vsock on one Unix socket and wants `CONNECT <port>\n` first, answering
// `OK <host port>\n` (docs/vsock.md in the firecracker repository).
import net from 'node:net';
import { FirstLineError, readFirstLine } from '../protocol/first-line.ts';

export type AgentEndpoint =
  | { kind: 'virtio-serial'; path: string }
  | { kind: 'firecracker-vsock'; path: string; port: number };

/** The longest handshake line Firecracker sends back ("OK 1073741824\n"). */
const MAX_HANDSHAKE_BYTES = 64;

/** Connects to the agent's stream; rejects when nothing listens (yet) or the VMM refuses the port. */
export function dialAgent(endpoint: AgentEndpoint): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(endpoint.path);
    const fail = (err: Error): void => {
      socket.destroy();
      reject(err);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      if (endpoint.kind === 'virtio-serial') {
        socket.removeListener('error', fail);
        resolve(socket);
        return;
      }
      socket.write(`CONNECT ${endpoint.port}\n`);
      readFirstLine(socket, MAX_HANDSHAKE_BYTES).then((bytes) => {
        const line = bytes.toString('latin1');
        if (!/^OK \d+$/.test(line)) {
          fail(new Error(`vsock handshake: expected "OK <port>", got ${JSON.stringify(line.slice(0, 40))}`));
          return;
        }
        // The line is gone from the stream; whatever came after it already belongs to the agent.
        socket.removeListener('error', fail);
        resolve(socket);
      }, (err: FirstLineError) => {
        // Firecracker closes the connection when nothing listens on the port in the guest.
        fail(err.reason === 'too-long' ? new Error(`vsock handshake: no line within ${MAX_HANDSHAKE_BYTES} bytes`)
          : err.reason === 'closed' ? new Error(`vsock port ${endpoint.port}: the VMM closed the connection (nothing listens there yet)`)
          : err);
      });
    });
  });
}
