import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Listens on a Unix socket, replacing a stale socket file but refusing to take over a live one. */
export async function listenUnix(socketPath: string, options: { mode: number; owner?: { uid: number; gid: number } }): Promise<net.Server> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
  if (fs.existsSync(socketPath)) {
    const alive = await new Promise<boolean>((resolve) => {
      const s = net.createConnection(socketPath);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (alive) throw new Error(`another process is already serving ${socketPath}`);
    fs.rmSync(socketPath, { force: true });
  }
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  fs.chmodSync(socketPath, options.mode);
  if (options.owner) fs.chownSync(socketPath, options.owner.uid, options.owner.gid);
  return server;
}
