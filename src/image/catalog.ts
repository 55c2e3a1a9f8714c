// The catalog of image and kernel bundles: JSON naming each bundle's URL (http, https or file; relative to the
// catalog), sha256 and size, plus the kernel an image boots with. banger ships one (catalog/catalog.json, empty
// until bundles are published somewhere this build can vouch for); `[image] catalog` in config.toml points at
// another, by path or URL.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { z } from 'zod';
import { BangerError } from '../protocol/errors.ts';
import { IMAGE_NAME_PATTERN } from '../protocol/daemon-schemas.ts';
import { isLoopbackHost } from './oci-ref.ts';
import { httpFetch } from '../system/http-fetch.ts';

const NAME = IMAGE_NAME_PATTERN;
const MAX_CATALOG_BYTES = 1024 * 1024;

const bundleEntry = {
  name: z.string().regex(NAME),
  url: z.string().min(1).max(4096),
  sha256: z.string().regex(/^[a-f0-9]{64}$/),
  size: z.int().min(1).max(2 ** 50),
  description: z.string().max(500).default(''),
};

const catalogSchema = z.object({
  schemaVersion: z.literal(1),
  images: z.array(z.object({ ...bundleEntry, kernel_ref: z.string().regex(NAME).nullable().default(null) })).default([]),
  kernels: z.array(z.object(bundleEntry)).default([]),
});

export type Catalog = z.output<typeof catalogSchema>;
export type CatalogImage = Catalog['images'][number];
export type CatalogKernel = Catalog['kernels'][number];

/** The catalog banger ships, beside src/ and dist/. */
export function shippedCatalogPath(from: string = import.meta.url): string {
  return fileURLToPath(new URL('../../catalog/catalog.json', from));
}

/** The catalog's location as a URL, so entries can be relative to it. */
export function catalogUrl(source: string | null): URL {
  if (source === null) return pathToFileURL(shippedCatalogPath());
  if (/^(https?|file):\/\//.test(source)) return new URL(source);
  return pathToFileURL(path.resolve(source));
}

async function readCatalogText(url: URL, signal?: AbortSignal): Promise<string> {
  if (url.protocol === 'file:') {
    const file = fileURLToPath(url);
    const st = fs.statSync(file, { throwIfNoEntry: false });
    if (!st) throw new BangerError('IMAGE_NOT_FOUND', `the catalog ${file} does not exist`, { hint: 'fix [image] catalog in config.toml, or remove it to use the catalog banger ships' });
    if (st.size > MAX_CATALOG_BYTES) throw new BangerError('IMAGE_NOT_FOUND', `the catalog ${file} is over ${MAX_CATALOG_BYTES} bytes`);
    return fs.readFileSync(file, 'utf8');
  }
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new BangerError('INVALID_ARGUMENT', `the catalog ${url.href} is plain http on another host`, { hint: 'serve it over https' });
  }
  let res: Response;
  try {
    res = await httpFetch(url, { redirect: 'error', ...(signal ? { signal } : {}) });
  } catch (err) {
    throw new BangerError('IMAGE_NOT_FOUND', `cannot fetch the catalog ${url.href}: ${(err as Error).message}`, { hint: 'check [image] catalog in config.toml and the network', cause: err });
  }
  if (!res.ok) throw new BangerError('IMAGE_NOT_FOUND', `the catalog ${url.href} answered ${res.status}`, { hint: 'check [image] catalog in config.toml' });
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > MAX_CATALOG_BYTES) throw new BangerError('IMAGE_NOT_FOUND', `the catalog ${url.href} is over ${MAX_CATALOG_BYTES} bytes`);
  return body.toString('utf8');
}

/** Reads and checks the catalog; entry URLs come back absolute (relative ones resolved against the catalog). */
export async function loadCatalog(source: string | null, signal?: AbortSignal): Promise<Catalog> {
  const url = catalogUrl(source);
  let doc: unknown;
  try {
    doc = JSON.parse(await readCatalogText(url, signal));
  } catch (err) {
    if (err instanceof BangerError) throw err;
    throw new BangerError('IMAGE_NOT_FOUND', `the catalog ${url.href} is not JSON`, { hint: 'fix the catalog file' });
  }
  const parsed = catalogSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BangerError('IMAGE_NOT_FOUND', `the catalog ${url.href} is not valid: ${issue.path.join('.')}: ${issue.message}`, { hint: 'fix the catalog file' });
  }
  const absolute = <T extends { url: string }>(e: T): T => ({ ...e, url: new URL(e.url, url).href });
  return { ...parsed.data, images: parsed.data.images.map(absolute), kernels: parsed.data.kernels.map(absolute) };
}
