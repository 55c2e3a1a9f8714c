// A client for Firecracker's HTTP API on its Unix socket. Every call settles once: an answer, Firecracker's
// fault_message (as VMM_FAILED naming the request), or a transport error.
import http from 'node:http';
import { BangerError } from '../../protocol/errors.ts';
import type { FirecrackerRequest } from './fc-requests.ts';

/** Firecracker answers at once; a request this slow means it hangs. Snapshots write guest memory: longer. */
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_ANSWER_BYTES = 1024 * 1024;

export interface FirecrackerAnswer {
  status: number;
  body: unknown;
}

export class FirecrackerApi {
  readonly socketPath: string;

  constructor(socketPath: string) {
    this.socketPath = socketPath;
  }

  /** Sends one request; a 4xx/5xx answer is VMM_FAILED with Firecracker's own fault_message. */
  async send(request: FirecrackerRequest, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<unknown> {
    const answer = await this.raw(request.method, request.path, request.body, timeoutMs);
    if (answer.status >= 400) {
      const fault = (answer.body as { fault_message?: unknown } | null)?.fault_message;
      throw new BangerError('VMM_FAILED', `Firecracker refused ${request.method} ${request.path} (${answer.status}): ${typeof fault === 'string' ? fault : JSON.stringify(answer.body)}`, {
        hint: 'see the VM\'s firecracker.log (in its directory); the request came from banger, so report it if the Firecracker version is a supported one (banger doctor)',
      });
    }
    return answer.body;
  }

  raw(method: string, urlPath: string, body: unknown, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<FirecrackerAnswer> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request({
        socketPath: this.socketPath, method, path: urlPath, timeout: timeoutMs,
        headers: { accept: 'application/json', ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) },
      }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) req.destroy(new Error(`answer larger than ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = null;
          try {
            parsed = text === '' ? null : JSON.parse(text);
          } catch {
            parsed = text;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new BangerError('VMM_FAILED', `Firecracker API ${method} ${urlPath} on ${this.socketPath}: ${err.message}`, {
        hint: 'check that the VM\'s Firecracker still runs (banger vm show NAME)',
        cause: err,
      })));
      req.end(payload);
    });
  }
}
