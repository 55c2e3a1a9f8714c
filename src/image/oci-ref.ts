// Image references as `docker pull` reads them: [REGISTRY/]REPOSITORY[:TAG][@DIGEST]. A first component with a
// dot or a colon, or `localhost`, is a registry; otherwise the image is on Docker Hub, where one-component names
// live under library/.
import { BangerError } from '../protocol/errors.ts';
import { isLoopbackHost } from '../system/url-source.ts';

export interface ImageRef {
  /** Host and optional port, as written (docker.io for Docker Hub). */
  registry: string;
  repository: string;
  tag: string | null;
  digest: string | null;
}

const DOCKER_HUB = 'docker.io';
/** Docker Hub's API lives on another host than its name. */
const DOCKER_HUB_API = 'registry-1.docker.io';
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
export const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function parseImageRef(text: string): ImageRef {
  const bad = (why: string): BangerError => new BangerError('INVALID_ARGUMENT', `${JSON.stringify(text)} is not an image reference: ${why}`, {
    hint: 'for example: debian:bookworm, ghcr.io/owner/image:tag, localhost:5000/app@sha256:…',
  });
  if (text.length === 0 || text.length > 512) throw bad('it must be 1 to 512 characters');
  let rest = text;
  let digest: string | null = null;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad('the digest must be sha256: and 64 hex digits');
  }
  let tag: string | null = null;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`the tag ${JSON.stringify(tag)} has characters a tag cannot have`);
  }
  const parts = rest.split('/');
  let registry = DOCKER_HUB;
  if (parts.length > 1 && (parts[0]!.includes('.') || parts[0]!.includes(':') || parts[0] === 'localhost')) {
    registry = parts.shift()!;
    if (!/^[a-zA-Z0-9.-]+(:\d{1,5})?$/.test(registry)) throw bad(`the registry ${JSON.stringify(registry)} is not a host[:port]`);
  }
  if (parts.length === 0 || parts.some((p) => !COMPONENT.test(p))) throw bad('repository names are lowercase letters, digits and . _ - between slashes');
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  return { registry, repository: parts.join('/'), tag: tag ?? (digest ? null : 'latest'), digest };
}

/** The reference written out in full, as shown to users and stored as an image's source. */
export function formatImageRef(ref: ImageRef): string {
  return `${ref.registry}/${ref.repository}${ref.tag ? `:${ref.tag}` : ''}${ref.digest ? `@${ref.digest}` : ''}`;
}

/** The host the registry's HTTP API answers on. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? DOCKER_HUB_API : registry;
}

export { isLoopbackHost };

/** Whether plain http may be used: only for a registry on this host's loopback (or listed in config as insecure). */
export function isLoopbackRegistry(registry: string): boolean {
  return isLoopbackHost(registry.replace(/:\d+$/, ''));
}
