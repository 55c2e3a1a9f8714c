// Fetching a release for `banger update`: small files (the manifest, SHA256SUMS and its signature) read whole
// under a cap, and the tarball streamed to a file while it is counted and hashed, so nothing unverified is
// kept and no body can grow past what was allowed.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BangerError } from '../protocol/errors.ts';
import { HashingStream } from './hashing-stream.ts';
import { RELEASE_LIMITS, type ReleaseEntry } from './release.ts';
import { openUrlSource, urlLabel } from './url-source.ts';

export interface ReleaseFetchOptions {
  signal?: AbortSignal;
  /** How http(s) is fetched; banger's httpFetch unless a test gives its own. */
  fetch?: typeof fetch;
}

function refuse(url: string) {
  return (why: string): BangerError => new BangerError('RELEASE_INVALID', `${urlLabel(url)}: ${why}`, { hint: 'nothing was installed; check the release server, or try again later' });
}

function open(url: string, maxBytes: number, options: ReleaseFetchOptions): Promise<Readable> {
  return openUrlSource({
    url, maxBytes, refuse: refuse(url), unreachableHint: 'check that this host reaches the release server, or try again later',
    ...(options.signal ? { signal: options.signal } : {}), ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}

/** The whole body of `url`, refused as soon as it passes `maxBytes`. */
export async function fetchCapped(url: string, maxBytes: number, options: ReleaseFetchOptions = {}): Promise<Buffer> {
  const body = await open(url, maxBytes, options);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      throw refuse(url)(`it is longer than the ${maxBytes} bytes allowed`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The URLs of a release's files: the manifest's relative paths resolved against the manifest's URL. */
export function releaseUrls(manifestUrl: string, entry: ReleaseEntry): { tarball: string; sums: string; signature: string } {
  return { tarball: new URL(entry.tarball, manifestUrl).href, sums: new URL(entry.sha256sums, manifestUrl).href, signature: new URL(entry.signature, manifestUrl).href };
}

/**
 * Streams the tarball into `dest` (created, never overwritten), refusing it past `maxBytes` or when its sha256 is
 * not `sha256`; a refused or failed download leaves no file.
 */
export async function fetchTarball(url: string, dest: string, expect: { sha256: string; maxBytes: number }, options: ReleaseFetchOptions = {}): Promise<void> {
  const cap = Math.min(expect.maxBytes, RELEASE_LIMITS.tarballBytes);
  const hashing = new HashingStream();
  // Opened here, so an existing file is refused at once and never removed below: only the file made here is.
  const out = fs.createWriteStream('', { fd: fs.openSync(dest, 'wx', 0o600) });
  try {
    const body = await open(url, cap, options);
    hashing.on('data', () => {
      if (hashing.bytes > cap) hashing.destroy(refuse(url)(`it is longer than the ${cap} bytes the manifest gives`));
    });
    await pipeline(body, hashing, out, ...(options.signal ? [{ signal: options.signal }] as const : []));
    const got = hashing.hex();
    if (got !== expect.sha256) throw refuse(url)(`its sha256 is ${got}, not ${expect.sha256} as the signed SHA256SUMS says`);
  } catch (err) {
    out.destroy();
    fs.rmSync(dest, { force: true });
    throw err;
  }
}
