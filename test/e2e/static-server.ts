// A static file server for one directory on 127.0.0.1, in a child process: the e2e tests run the CLI with
// spawnSync, which would stall a server in the test's own process. Paths may have subdirectories; nothing
// outside the directory is served. Each response closes its connection, as simple servers do.
import { spawn, type ChildProcess } from 'node:child_process';
import readline from 'node:readline';

const SERVER = `
const fs = require('node:fs'), path = require('node:path');
const dir = path.resolve(process.argv[1]);
const server = require('node:http').createServer((req, res) => {
  const file = path.join(dir, decodeURIComponent(new URL(req.url, 'http://x').pathname));
  let size;
  try { if (!file.startsWith(dir + path.sep)) throw 0; size = fs.statSync(file).size; } catch { res.writeHead(404).end(); return; }
  res.writeHead(200, { 'content-length': size, connection: 'close' });
  fs.createReadStream(file).pipe(res);
}).listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log(server.address().port));
// Gone with the test: its stdin is a pipe from the test process, which closes when that process ends.
process.stdin.on('end', () => process.exit(0)).resume();
`;

export interface StaticServer {
  origin: string;
  port: number;
  stop(): void;
}

/** Serves `dir` on 127.0.0.1 (`port`, or a free one), once it listens. */
export async function startStaticServer(dir: string, port = 0): Promise<StaticServer> {
  const child: ChildProcess = spawn(process.execPath, ['-e', SERVER, dir, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = readline.createInterface({ input: child.stdout! });
  const first = await new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the static file server exited (${code}) before it listened`)));
  });
  lines.close();
  const listening = Number(first);
  return { origin: `http://127.0.0.1:${listening}`, port: listening, stop: () => void child.kill('SIGKILL') };
}
