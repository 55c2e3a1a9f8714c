import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface ListenOptions {
  /** The socket file's mode, set by the umask at bind so it never exists with another. */
  mode: number;
  /** Runs each file system step (and the bind, which creates the socket file); bangerd-root passes asOwner. */
  as?: <T>(fn: () => T) => T;
}

/** Whether something accepts connections on a Unix socket now. */
export function isSocketAlive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Listens on a Unix socket, replacing a stale socket file but refusing to take over a live one. */
export async function listenUnix(socketPath: string, options: ListenOptions): Promise<net.Server> {
  const as = options.as ?? (<T>(fn: () => T): T => fn());
  as(() => fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 }));
  if (as(() => fs.existsSync(socketPath))) {
    if (await isSocketAlive(socketPath)) throw new Error(`another process is already serving ${socketPath}`);
    as(() => fs.rmSync(socketPath, { force: true }));
  }
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.removeListener('error', reject);
      resolve();
    });
    // listen() binds synchronously, so the socket file is created inside `as`, and with the mode asked
    // for from its first moment (the umask decides the mode bind gives it).
    const umask = process.umask(~options.mode & 0o777);
    try {
      as(() => server.listen(socketPath));
    } finally {
      process.umask(umask);
    }
  });
  return server;
}
