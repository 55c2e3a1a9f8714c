// A client for the OCI distribution API (Docker registry v2), enough to pull an image: the bearer-token challenge
// (WWW-Authenticate), basic auth from ~/.docker/config.json, manifest lists and OCI indexes resolved to one
// platform, Docker and OCI media types, and blobs streamed to disk while their digest and size are checked.
// Written on fetch rather than taken from npm: the maintained registry clients there either shell out to
// docker/skopeo or carry a whole container runtime; this needs five requests and a hash.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { BangerError } from '../protocol/errors.ts';
import { httpFetch } from '../system/http-fetch.ts';
import { DIGEST, formatImageRef, isLoopbackRegistry, registryApiHost, type ImageRef } from './oci-ref.ts';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;
const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(', ');
/** Manifests are small JSON documents; anything larger is refused before it is parsed. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ResolvedImage {
  ref: ImageRef;
  /** Digest of the platform's own manifest (not of the index that pointed to it). */
  manifestDigest: string;
  config: Descriptor;
  layers: Descriptor[];
}

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Registries reached over plain http besides loopback ones ([image] insecure_registries). */
  insecure?: readonly string[];
  /** Credentials for a registry, or null; see dockerConfigCredentials. */
  credentials?: (registry: string) => Credentials | null | Promise<Credentials | null>;
  fetch?: typeof fetch;
}

export interface Platform {
  os: string;
  architecture: string;
}

export class RegistryClient {
  private readonly options: RegistryClientOptions;
  private readonly tokens = new Map<string, string>();

  constructor(options: RegistryClientOptions = {}) {
    this.options = options;
  }

  /** The manifest of `ref` for `platform`, following an index or manifest list. */
  async resolve(ref: ImageRef, platform: Platform = { os: 'linux', architecture: 'amd64' }, signal?: AbortSignal): Promise<ResolvedImage> {
    let reference = ref.digest ?? ref.tag ?? 'latest';
    for (let depth = 0; depth < 2; depth++) {
      const { body, digest, mediaType } = await this.manifest(ref, reference, signal);
      const doc = parseJson(body, `the manifest of ${formatImageRef(ref)}`);
      const type = typeof doc.mediaType === 'string' ? doc.mediaType : mediaType;
      if (type === MEDIA.ociIndex || type === MEDIA.dockerList || (Array.isArray(doc.manifests) && !Array.isArray(doc.layers))) {
        const entries = Array.isArray(doc.manifests) ? (doc.manifests as Array<Record<string, unknown>>) : [];
        const match = entries.find((m) => {
          const p = (m.platform ?? {}) as Record<string, unknown>;
          return p.os === platform.os && p.architecture === platform.architecture;
        });
        if (!match || typeof match.digest !== 'string' || !DIGEST.test(match.digest)) {
          const have = entries.map((m) => { const p = (m.platform ?? {}) as Record<string, unknown>; return `${String(p.os)}/${String(p.architecture)}`; });
          throw new BangerError('IMAGE_NOT_FOUND', `${formatImageRef(ref)} has no ${platform.os}/${platform.architecture} image (it has ${have.join(', ') || 'none'})`, {
            hint: 'pick an image built for linux/amd64',
          });
        }
        reference = match.digest;
        continue;
      }
      if (doc.schemaVersion === 1 || /^application\/vnd\.docker\.distribution\.manifest\.v1\+/.test(type)) {
        throw new BangerError('IMAGE_NOT_FOUND', `${formatImageRef(ref)} is a Docker schema 1 image, which banger does not read`, { hint: 're-push it with a current docker or skopeo (schema 2 or OCI)' });
      }
      const config = descriptor(doc.config, 'config');
      const layers = Array.isArray(doc.layers) ? doc.layers.map((l, i) => descriptor(l, `layer ${i}`)) : [];
      if (layers.length === 0) throw new BangerError('IMAGE_NOT_FOUND', `the manifest of ${formatImageRef(ref)} lists no layers`);
      return { ref, manifestDigest: digest, config, layers };
    }
    throw new BangerError('IMAGE_NOT_FOUND', `${formatImageRef(ref)}: an index points to another index`, { hint: 'this registry layout is not supported' });
  }

  /** Small blobs (the image config) read into memory, checked against their descriptor. */
  async blobBytes(ref: ImageRef, desc: Descriptor, signal?: AbortSignal): Promise<Buffer> {
    if (desc.size > MAX_MANIFEST_BYTES) throw new BangerError('IMAGE_NOT_FOUND', `${desc.digest} is ${desc.size} bytes, too large to read whole`);
    const res = await this.get(ref, `blobs/${desc.digest}`, '*/*', signal);
    const body = await readCapped(res, desc.size, desc.digest);
    checkDigest(body, desc.digest);
    return body;
  }

  /**
   * Streams a blob to `file` (through `file.partial`), hashing it as it comes, stopping at its declared size, and
   * renaming only when digest and size match; a mismatch leaves nothing. Returns the bytes written.
   */
  async downloadBlob(ref: ImageRef, desc: Descriptor, file: string, signal?: AbortSignal): Promise<number> {
    const res = await this.get(ref, `blobs/${desc.digest}`, '*/*', signal);
    if (!res.body) throw new BangerError('IMAGE_NOT_FOUND', `${desc.digest}: the registry sent no body`);
    const partial = `${file}.partial`;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const out = fs.createWriteStream(partial, { mode: 0o644 });
    // A write that fails (a full disk) fails the download, rather than the process.
    let writeError: Error | null = null;
    const failed = new Promise<never>((_resolve, reject) => out.on('error', (err) => {
      writeError = err;
      reject(new BangerError('IMAGE_NOT_FOUND', `cannot write ${partial}: ${err.message}`, { hint: 'free some disk space, or prune the blob cache: banger image cache prune', cause: err }));
    }));
    failed.catch(() => undefined);
    const hash = createHash('sha256');
    let bytes = 0;
    try {
      for await (const chunk of Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)) {
        const buf = chunk as Buffer;
        bytes += buf.length;
        if (bytes > desc.size) throw new BangerError('IMAGE_NOT_FOUND', `${desc.digest} is larger than the ${desc.size} bytes its manifest declares`, { hint: 'the registry or a proxy sent something else; try again' });
        hash.update(buf);
        if (writeError) await failed;
        if (!out.write(buf)) await Promise.race([new Promise<void>((resolve) => out.once('drain', resolve)), failed]);
      }
      if (writeError) await failed;
      await Promise.race([new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve()))), failed]);
      if (bytes !== desc.size) throw new BangerError('IMAGE_NOT_FOUND', `${desc.digest}: got ${bytes} bytes, its manifest declares ${desc.size}`, { hint: 'the download was cut short; try again' });
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== desc.digest) throw new BangerError('IMAGE_NOT_FOUND', `${desc.digest}: the bytes received hash to ${got}`, { hint: 'the registry or a proxy sent something else; try again' });
      fs.renameSync(partial, file);
      return bytes;
    } catch (err) {
      out.destroy();
      fs.rmSync(partial, { force: true });
      throw err;
    }
  }

  private async manifest(ref: ImageRef, reference: string, signal?: AbortSignal): Promise<{ body: Buffer; digest: string; mediaType: string }> {
    const res = await this.get(ref, `manifests/${reference}`, MANIFEST_ACCEPT, signal);
    const body = await readCapped(res, MAX_MANIFEST_BYTES, `the manifest of ${formatImageRef(ref)}`);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    // Asked for by digest: the bytes must be those. By tag: what the registry says must match what came.
    const expected = reference.startsWith('sha256:') ? reference : res.headers.get('docker-content-digest');
    if (expected && expected.startsWith('sha256:') && expected !== digest) {
      throw new BangerError('IMAGE_NOT_FOUND', `the manifest of ${formatImageRef(ref)} hashes to ${digest}, not ${expected}`, { hint: 'the registry or a proxy sent something else; try again' });
    }
    return { body, digest, mediaType: (res.headers.get('content-type') ?? '').split(';')[0]!.trim() };
  }

  /** One GET of the registry API, answering an auth challenge once. */
  private async get(ref: ImageRef, suffix: string, accept: string, signal?: AbortSignal): Promise<Response> {
    const url = `${this.baseUrl(ref.registry)}/v2/${ref.repository}/${suffix}`;
    const key = `${ref.registry}/${ref.repository}`;
    const doFetch = this.options.fetch ?? httpFetch;
    const fetchOnce = (target: string, auth: string | null): Promise<Response> => doFetch(target, {
      headers: { accept, ...(auth ? { authorization: auth } : {}) }, redirect: 'manual', ...(signal ? { signal } : {}),
    }).catch((err: unknown) => {
      throw new BangerError('NETWORK_FAILED', `cannot reach ${ref.registry}: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`, {
        hint: `check the registry address and that this host reaches it (curl ${this.baseUrl(ref.registry)}/v2/)`, cause: err,
      });
    });
    // Redirects (blob storage elsewhere) are followed by hand: credentials go only to the registry's own host,
    // and a redirect may not downgrade to plain http, nor lead a loopback registry off loopback.
    const send = async (auth: string | null): Promise<Response> => {
      let target = url;
      for (let hops = 0; ; hops++) {
        const sameHost = new URL(target).host === new URL(url).host;
        const res = await fetchOnce(target, sameHost ? auth : null);
        const location = res.headers.get('location');
        if (res.status < 300 || res.status >= 400 || !location) return res;
        await res.body?.cancel();
        if (hops >= 5) throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} redirected more than 5 times`);
        const next = new URL(location, target);
        checkRedirect(ref.registry, next, (host) => this.allowsHttp(host));
        target = next.href;
      }
    };
    const token = this.tokens.get(key);
    let res = await send(token ? `Bearer ${token}` : null);
    if (res.status === 401) {
      const auth = await this.answerChallenge(ref, res.headers.get('www-authenticate'), signal);
      await res.body?.cancel();
      res = await send(auth);
    }
    if (res.ok) return res;
    await res.body?.cancel();
    const what = `${formatImageRef(ref)} (${suffix.split('/')[0]})`;
    if (res.status === 401 || res.status === 403) {
      throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} refused ${what}: HTTP ${res.status}`, {
        hint: `log in for that registry so ~/.docker/config.json has its credentials, or check the name: ${formatImageRef(ref)}`,
      });
    }
    if (res.status === 404) throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} has no ${what}`, { hint: 'check the repository and tag' });
    throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} answered HTTP ${res.status} for ${what}`, { hint: 'try again later' });
  }

  /** The Authorization header a 401's challenge asks for: a bearer token from its realm, or basic credentials. */
  private async answerChallenge(ref: ImageRef, header: string | null, signal?: AbortSignal): Promise<string> {
    const creds = (await this.options.credentials?.(ref.registry)) ?? null;
    const basic = creds ? `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` : null;
    const challenge = parseChallenge(header ?? '');
    if (challenge?.scheme === 'basic') {
      if (!basic) throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} wants a user name and password`, { hint: `log in: docker login ${ref.registry} (banger reads ~/.docker/config.json and its credential helpers)` });
      return basic;
    }
    if (challenge?.scheme !== 'bearer' || !challenge.params.realm) {
      throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} asked for authentication banger does not speak: ${JSON.stringify(header ?? '')}`);
    }
    const realm = new URL(challenge.params.realm);
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.allowsHttp(realm.host))) {
      throw new BangerError('IMAGE_NOT_FOUND', `${ref.registry} sends banger to ${realm.origin} for a token over plain http`, { hint: 'list it in [image] insecure_registries only if you trust that network' });
    }
    if (challenge.params.service) realm.searchParams.set('service', challenge.params.service);
    realm.searchParams.set('scope', challenge.params.scope ?? `repository:${ref.repository}:pull`);
    const res = await (this.options.fetch ?? httpFetch)(realm, { headers: basic ? { authorization: basic } : {}, ...(signal ? { signal } : {}) }).catch((err: unknown) => {
      throw new BangerError('NETWORK_FAILED', `cannot reach the token server ${realm.origin} that ${ref.registry} sends clients to: ${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}`, {
        hint: `check that this host reaches ${realm.origin}`, cause: err,
      });
    });
    const body = await readCapped(res, 1024 * 1024, `the token from ${realm.origin}`);
    if (!res.ok) throw new BangerError('IMAGE_NOT_FOUND', `${realm.origin} refused a token for ${ref.repository}: HTTP ${res.status}`, { hint: 'check the credentials in ~/.docker/config.json' });
    const doc = parseJson(body, `the token from ${realm.origin}`);
    const token = typeof doc.token === 'string' ? doc.token : typeof doc.access_token === 'string' ? doc.access_token : null;
    if (!token) throw new BangerError('IMAGE_NOT_FOUND', `${realm.origin} answered without a token`);
    this.tokens.set(`${ref.registry}/${ref.repository}`, token);
    return `Bearer ${token}`;
  }

  private allowsHttp(registry: string): boolean {
    return isLoopbackRegistry(registry) || (this.options.insecure ?? []).includes(registry);
  }

  private baseUrl(registry: string): string {
    return `${this.allowsHttp(registry) ? 'http' : 'https'}://${registryApiHost(registry)}`;
  }
}

/** Refuses a redirect that would downgrade to http or take a loopback registry's traffic off this host. */
export function checkRedirect(registry: string, next: URL, allowsHttp: (host: string) => boolean): void {
  if (next.protocol !== 'https:' && !(next.protocol === 'http:' && allowsHttp(next.host))) {
    throw new BangerError('IMAGE_NOT_FOUND', `${registry} redirected to ${next.origin}, which is neither https nor a loopback or insecure registry`, {
      hint: 'list that host in [image] insecure_registries only if you trust the network to it',
    });
  }
  if (isLoopbackRegistry(registry) && !isLoopbackRegistry(next.host)) {
    throw new BangerError('IMAGE_NOT_FOUND', `the loopback registry ${registry} redirected off this host, to ${next.origin}`, { hint: 'a registry on 127.0.0.1 serves its own blobs' });
  }
}

/** `Bearer realm="…",service="…",scope="…"` as scheme and parameters. */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } | null {
  const m = /^\s*(\w+)\s*(.*)$/.exec(header);
  if (!m) return null;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  return { scheme: m[1]!.toLowerCase(), params };
}

function descriptor(value: unknown, what: string): Descriptor {
  const v = (value ?? {}) as Record<string, unknown>;
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest) || !Number.isSafeInteger(v.size) || (v.size as number) < 0 || typeof v.mediaType !== 'string') {
    throw new BangerError('IMAGE_NOT_FOUND', `the manifest's ${what} is not a valid descriptor (sha256 digest, size, media type)`);
  }
  return { mediaType: v.mediaType, digest: v.digest, size: v.size as number };
}

async function readCapped(res: Response, max: number, what: string): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) throw new BangerError('IMAGE_NOT_FOUND', `${what} is ${declared} bytes, over the ${max} allowed`);
  const chunks: Buffer[] = [];
  let size = 0;
  if (res.body) {
    for await (const chunk of Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)) {
      size += (chunk as Buffer).length;
      if (size > max) throw new BangerError('IMAGE_NOT_FOUND', `${what} is over the ${max} bytes allowed`);
      chunks.push(chunk as Buffer);
    }
  }
  return Buffer.concat(chunks);
}

function checkDigest(body: Buffer, digest: string): void {
  const got = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  if (got !== digest) throw new BangerError('IMAGE_NOT_FOUND', `${digest}: the bytes received hash to ${got}`, { hint: 'the registry or a proxy sent something else; try again' });
}

function parseJson(body: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // Reported below.
  }
  throw new BangerError('IMAGE_NOT_FOUND', `${what} is not a JSON object`);
}
