// A minimal QMP client: newline-delimited JSON over the VM's Unix socket.
import net from 'node:net';

export async function qmpCommand(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    let buffer = '';
    let negotiated = false;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`QMP ${command} timed out`));
    }, timeoutMs);
    const finish = (err: Error | null, value?: unknown): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    socket.setEncoding('utf8');
    socket.on('error', (err) => finish(err));
    socket.on('close', () => {
      // quit closes the socket instead of answering; that is success.
      if (command === 'quit' && negotiated) finish(null, {});
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
        buffer = buffer.slice(nl + 1);
        if ('QMP' in msg) socket.write('{"execute":"qmp_capabilities"}\n');
        else if ('return' in msg && !negotiated) {
          negotiated = true;
          socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
        } else if ('return' in msg) finish(null, msg.return);
        else if ('error' in msg) finish(new Error(`QMP ${command}: ${JSON.stringify(msg.error)}`));
      }
    });
  });
}
