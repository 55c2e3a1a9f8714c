// Where a catalog bundle's bytes come from: an https URL, a plain http URL on this host's loopback (a test or a
// local mirror), a file:// URL or an absolute path. Redirects are followed by hand so that each hop is checked:
// none may downgrade https to http, and a chain may not cross between loopback and the rest of the network (a
// loopback server stays local; a remote one cannot steer the daemon at local services).
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { BangerError } from '../protocol/errors.ts';
import { httpFetch } from '../system/http-fetch.ts';
import { isLoopbackHost } from './oci-ref.ts';

const MAX_REDIRECTS = 5;
const READ_CHUNK = 1024 * 1024;
export const BUNDLE_HINT = 'the bundle is damaged or not what the catalog says; check the catalog entry or try again';

export interface BundleSourceOptions {
  source: string;
  /** A Content-Length or file size above this is refused before anything is read. */
  declaredSize: number;
  signal?: AbortSignal;
  /** How http(s) is fetched; banger's httpFetch unless a test gives its own. */
  fetch?: typeof fetch;
}

/** A bad bundle (or a source banger will not read one from), named by `label`. */
export function badBundle(label: string, why: string, hint = BUNDLE_HINT): BangerError {
  return new BangerError('IMAGE_NOT_FOUND', `bundle ${label}: ${why}`, { hint });
}

/** The source as shown in messages: no credentials or query string (a signed URL's token) from a URL. */
export function bundleLabel(source: string): string {
  if (!/^[a-z][a-z0-9+.-]*:/i.test(source)) return source;
  try {
    const url = new URL(source);
    return url.protocol === 'file:' ? fileURLToPath(url) : `${url.origin}${url.pathname}`;
  } catch {
    return source.replace(/[?#].*$/, '');
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

/** The bundle's bytes as they arrive, unchecked: the caller counts and hashes them. */
export async function openBundleSource(options: BundleSourceOptions): Promise<Readable> {
  const { source } = options;
  if (/^https?:/i.test(source)) return openUrl(options);
  if (/^file:/i.test(source)) return openFile(fileURLToPath(source), options);
  if (path.isAbsolute(source)) return openFile(source, options);
  throw new BangerError('INVALID_ARGUMENT', `bundle source ${JSON.stringify(source)} is not an http(s) URL, a file:// URL or an absolute path`, {
    hint: 'give the bundle as https://…, file:///… or /absolute/path.tar.zst',
  });
}

async function openFile(file: string, options: BundleSourceOptions): Promise<Readable> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, fs.constants.O_RDONLY);
  } catch (err) {
    throw new BangerError('IMAGE_NOT_FOUND', `bundle ${file} cannot be read: ${(err as Error).message}`, { hint: 'check the path in the catalog entry', cause: err });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw badBundle(file, 'it is not a regular file', 'check the path in the catalog entry');
    if (stat.size > options.declaredSize) throw badBundle(file, `it is ${stat.size} bytes, longer than the ${options.declaredSize} declared`);
  } catch (err) {
    await handle.close();
    throw err;
  }
  return handle.createReadStream({ highWaterMark: READ_CHUNK, ...(options.signal ? { signal: options.signal } : {}) });
}

async function openUrl(options: BundleSourceOptions): Promise<Readable> {
  const label = bundleLabel(options.source);
  const start = new URL(options.source);
  let url = start;
  let from = start;
  for (let hops = 0; ; hops++) {
    // Checked before every request, the first included: a refused URL is never connected to.
    const refusal = urlRefusal(url, { start, from });
    if (refusal) throw badBundle(label, refusal, 'catalog bundles come over https (plain http only from 127.0.0.1); check the catalog entry');
    const res = await fetchOnce(options.fetch ?? httpFetch, url, label, options.signal);
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      // Not awaited: a server that keeps the body open would keep the refusal waiting.
      void res.body?.cancel().catch(() => undefined);
      if (hops >= MAX_REDIRECTS) throw badBundle(label, `it redirected more than ${MAX_REDIRECTS} times`);
      from = url;
      url = new URL(location, url);
      continue;
    }
    if (res.status !== 200) {
      void res.body?.cancel().catch(() => undefined);
      throw badBundle(label, `the server answered HTTP ${res.status}`, 'check the catalog entry, or try again later');
    }
    const length = res.headers.get('content-length');
    if (length !== null && Number(length) > options.declaredSize) {
      void res.body?.cancel().catch(() => undefined);
      throw badBundle(label, `the server says it is ${length} bytes, longer than the ${options.declaredSize} declared`);
    }
    return res.body ? Readable.fromWeb(res.body as ReadableStream<Uint8Array>) : Readable.from([]);
  }
}

function fetchOnce(doFetch: typeof fetch, url: URL, label: string, signal: AbortSignal | undefined): Promise<Response> {
  // identity: the bundle's hash is of the bytes as served, so no transfer compression is wanted.
  return doFetch(url, { redirect: 'manual', headers: { 'accept-encoding': 'identity' }, ...(signal ? { signal } : {}) }).catch((err: unknown) => {
    if (signal?.aborted) throw err;
    const why = err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    throw new BangerError('NETWORK_FAILED', `cannot fetch bundle ${label}: ${why}`, { hint: `check that this host reaches ${url.origin}`, cause: err });
  });
}
