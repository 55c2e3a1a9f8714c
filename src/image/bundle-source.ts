// Where a catalog bundle's bytes come from: an https URL, a plain http URL on this host's loopback (a test or a
// local mirror), a file:// URL or an absolute path. URLs are read with system/url-source.ts, which checks every
// redirect.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { BangerError } from '../protocol/errors.ts';
import { openUrlSource, urlLabel } from '../system/url-source.ts';

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
  return /^file:/i.test(source) ? fileURLToPath(source) : urlLabel(source);
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

function openUrl(options: BundleSourceOptions): Promise<Readable> {
  const label = bundleLabel(options.source);
  return openUrlSource({
    url: options.source, maxBytes: options.declaredSize, capWord: 'declared', ...(options.signal ? { signal: options.signal } : {}), ...(options.fetch ? { fetch: options.fetch } : {}),
    refuse: (why) => (/redirect|plain http|is not http/.test(why)
      ? badBundle(label, why, 'catalog bundles come over https (plain http only from 127.0.0.1); check the catalog entry')
      : /HTTP \d+/.test(why) ? badBundle(label, why, 'check the catalog entry, or try again later') : badBundle(label, why)),
  });
}
