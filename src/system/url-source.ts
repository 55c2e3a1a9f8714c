// Reading a body from an https URL (or plain http on this host's loopback) with each redirect checked by hand:
// none may downgrade https to http, and a chain may not cross between loopback and the rest of the network (a
// loopback server stays local; a remote one cannot steer banger at local services). A declared size caps what
// the server may announce; the caller counts and hashes the bytes as they come. Catalog bundles and releases
// (banger update) are read this way.
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { BangerError } from '../protocol/errors.ts';
import { httpFetch } from './http-fetch.ts';

const MAX_REDIRECTS = 5;

/** Whether a URL's hostname is this host's loopback. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** The URL as shown in messages: no credentials or query string (a signed URL's token). */
export function urlLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url.replace(/[?#].*$/, '');
  }
}

/** Why `next` may not be fetched as a hop of a chain that began at `start` and was last at `from`; null when it may. */
export function urlRefusal(next: URL, chain: { start: URL; from: URL }): string | null {
  const { start, from } = chain;
  if (next.protocol !== 'https:' && next.protocol !== 'http:') return `${next.protocol} is not http or https`;
  if (from.protocol === 'https:' && next.protocol === 'http:') return `https redirected to plain http (${next.origin})`;
  if (next.protocol === 'http:' && !isLoopbackHost(next.hostname)) return `plain http is only allowed to this host's loopback, not ${next.origin}`;
  if (isLoopbackHost(start.hostname) !== isLoopbackHost(next.hostname)) {
    return isLoopbackHost(start.hostname) ? `a loopback server redirected off this host, to ${next.origin}` : `a remote server redirected to this host's loopback (${next.origin})`;
  }
  return null;
}

export interface UrlSourceOptions {
  url: string;
  /** A Content-Length above this is refused before the body is read. */
  maxBytes: number;
  /** How messages name that cap: "allowed" (default), or "declared" for a size a catalog declared. */
  capWord?: string;
  signal?: AbortSignal;
  /** How http(s) is fetched; banger's httpFetch unless a test gives its own. */
  fetch?: typeof fetch;
  /** The error for a body banger will not read (a refused hop, an HTTP error, a size above the cap). */
  refuse: (why: string) => BangerError;
  /** What the user should check when the host cannot reach the server at all. */
  unreachableHint?: string;
}

/** The body's bytes as they arrive, unchecked beyond the announced length. */
export async function openUrlSource(options: UrlSourceOptions): Promise<Readable> {
  const start = new URL(options.url);
  let url = start;
  let from = start;
  for (let hops = 0; ; hops++) {
    // Checked before every request, the first included: a refused URL is never connected to.
    const refusal = urlRefusal(url, { start, from });
    if (refusal) throw options.refuse(refusal);
    const res = await fetchOnce(options, url);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      // Not awaited: a server that keeps the body open would keep the refusal waiting.
      void res.body?.cancel().catch(() => undefined);
      if (hops >= MAX_REDIRECTS) throw options.refuse(`it redirected more than ${MAX_REDIRECTS} times`);
      from = url;
      url = new URL(location, url);
      continue;
    }
    if (res.status !== 200) {
      void res.body?.cancel().catch(() => undefined);
      throw options.refuse(`the server answered HTTP ${res.status}`);
    }
    const length = res.headers.get('content-length');
    if (length !== null && Number(length) > options.maxBytes) {
      void res.body?.cancel().catch(() => undefined);
      throw options.refuse(`the server says it is ${length} bytes, longer than the ${options.maxBytes} ${options.capWord ?? 'allowed'}`);
    }
    return res.body ? Readable.fromWeb(res.body as ReadableStream<Uint8Array>) : Readable.from([]);
  }
}

function fetchOnce(options: UrlSourceOptions, url: URL): Promise<Response> {
  const { signal } = options;
  // identity: hashes are of the bytes as served, so no transfer compression is wanted.
  return (options.fetch ?? httpFetch)(url, { redirect: 'manual', headers: { 'accept-encoding': 'identity' }, ...(signal ? { signal } : {}) }).catch((err: unknown) => {
    if (signal?.aborted) throw err;
    const why = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    throw new BangerError('NETWORK_FAILED', `cannot fetch ${urlLabel(url.href)}: ${why}`, { hint: options.unreachableHint ?? `check that this host reaches ${url.origin}`, cause: err });
  });
}
