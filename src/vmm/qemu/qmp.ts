// A minimal QMP client: newline-delimited JSON over the VM's Unix socket. Whatever QEMU (or whatever holds the
// socket) sends, the call settles once: a line that is not a JSON object rejects it as a protocol error
// instead of throwing out of the socket's data handler, which would take bangerd down.
import net from 'node:net';
import { BangerError } from '../../protocol/errors.ts';
import { LineSplitter } from '../../protocol/line-splitter.ts';

/** QMP's greeting, answers and events are small; a line this long is not QMP. */
const MAX_QMP_LINE = 1024 * 1024;

export async function qmpCommand(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 3000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    const lines = new LineSplitter(MAX_QMP_LINE);
    let negotiated = false;
    let settled = false;
    const timer = setTimeout(() => {
      finish(new Error(`QMP ${command} timed out`));
    }, timeoutMs);
    const finish = (err: Error | null, value?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const protocolError = (what: string): BangerError => new BangerError('VMM_FAILED', `QMP ${command} on ${socketPath}: ${what}`, {
      hint: 'the socket did not speak QMP; check that the VM\'s QEMU is still the process behind it (banger vm show, banger vm logs)',
    });
    const onLine = (line: string): void => {
      if (line.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        finish(protocolError(`got a line that is not JSON: ${JSON.stringify(line.slice(0, 80))}`));
        return;
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        finish(protocolError(`expected a JSON object, got ${line.slice(0, 80)}`));
        return;
      }
      const msg = parsed as Record<string, unknown>;
      if ('QMP' in msg) socket.write('{"execute":"qmp_capabilities"}\n');
      else if ('return' in msg && !negotiated) {
        negotiated = true;
        socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
      } else if ('return' in msg) finish(null, msg.return);
      else if ('error' in msg) finish(new Error(`QMP ${command}: ${JSON.stringify(msg.error)}`));
      // Anything else is an event (SHUTDOWN, STOP, ...), which a single command does not wait for.
    };
    socket.on('error', (err) => finish(err));
    socket.on('close', () => {
      // quit closes the socket instead of answering; that is success.
      if (command === 'quit' && negotiated) finish(null, {});
      else finish(new Error(`QMP ${command}: the socket closed before an answer`));
    });
    socket.on('data', (chunk: Buffer) => {
      const { lines: complete, tooLarge } = lines.push(chunk);
      for (const line of complete) {
        if (settled) return;
        onLine(line);
      }
      if (tooLarge) finish(protocolError(`got a line longer than ${MAX_QMP_LINE} bytes`));
    });
  });
}
