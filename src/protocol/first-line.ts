// The first line of a stream that then carries something else: Firecracker's `OK <port>` after `CONNECT`,
// bangerd's tunnel request, and the tunnel's answer. Whatever came after the newline is put back, so the next
// reader sees the stream from the byte after it.
import type { Duplex } from 'node:stream';

export type FirstLineFailure = 'too-long' | 'closed' | 'failed';

export class FirstLineError extends Error {
  readonly reason: FirstLineFailure;
  constructor(reason: FirstLineFailure, message: string, cause?: unknown) {
    super(message, cause === undefined ? {} : { cause });
    this.name = 'FirstLineError';
    this.reason = reason;
  }
}

/**
 * Reads `socket` up to its first newline and resolves with the bytes before it, leaving the socket paused with
 * the rest unshifted. Rejects with a FirstLineError when more than `maxBytes` come without a newline, or when the
 * socket ends, closes or fails first.
 */
export function readFirstLine(socket: Duplex, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got: Buffer = Buffer.alloc(0);
    const stop = (): void => {
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onError);
      socket.pause();
    };
    const onData = (chunk: Buffer): void => {
      got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
      const nl = got.indexOf(0x0a);
      if (nl < 0) {
        if (got.length > maxBytes) {
          stop();
          reject(new FirstLineError('too-long', `no newline within ${maxBytes} bytes`));
        }
        return;
      }
      stop();
      const rest = got.subarray(nl + 1);
      if (rest.length > 0) socket.unshift(rest);
      resolve(got.subarray(0, nl));
    };
    const onEnd = (): void => {
      stop();
      reject(new FirstLineError('closed', 'the connection closed before a whole line came'));
    };
    const onError = (err: Error): void => {
      stop();
      reject(new FirstLineError('failed', err.message, err));
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onError);
  });
}
