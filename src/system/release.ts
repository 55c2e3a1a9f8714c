// What a banger release is, as `banger update` reads it and scripts/release.ts writes it:
//
//   manifest.json                          {"schema":1,"releases":[{version, channel, published, tarball, size, sha256sums, signature}]}
//   VERSION/banger-VERSION-linux-x64.tar.zst   one directory banger-VERSION/ (bin, dist, dist-agent, node_modules, install.sh)
//   VERSION/SHA256SUMS                     "<sha256 hex>  banger-VERSION-linux-x64.tar.zst", as sha256sum prints it
//   VERSION/SHA256SUMS.sig                 base64 ECDSA P-256 signature (ASN.1 DER) over SHA-256 of SHA256SUMS, as
//                                          `cosign sign-blob --key` writes it
//
// URLs in the manifest are relative to the manifest's own. The signature covers SHA256SUMS, which covers the
// tarball: the manifest itself is not trusted beyond choosing what to fetch.
import crypto from 'node:crypto';
import { z } from 'zod';
import { BangerError } from '../protocol/errors.ts';

/** The manifest schema this banger reads; a newer one is refused with what to do instead. */
export const MANIFEST_SCHEMA = 1;

/** Caps on what update reads before it has verified anything. */
export const RELEASE_LIMITS = { manifestBytes: 1024 * 1024, sumsBytes: 64 * 1024, signatureBytes: 4096, tarballBytes: 2 * 1024 ** 3 } as const;

const VERSION = /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/;
const RELATIVE = z.string().min(1).max(512).refine((s) => !/^[a-z][a-z0-9+.-]*:/i.test(s) && !s.startsWith('/') && !s.split('/').includes('..'), 'must be a path relative to the manifest');

const releaseEntry = z.object({
  version: z.string().regex(VERSION, 'must be MAJOR.MINOR.PATCH[-PRERELEASE]'),
  channel: z.string().min(1).max(32).default('stable'),
  published: z.string().max(64).optional(),
  tarball: RELATIVE,
  size: z.number().int().positive().max(RELEASE_LIMITS.tarballBytes),
  sha256sums: RELATIVE,
  signature: RELATIVE,
});

const manifestSchema = z.object({ schema: z.literal(MANIFEST_SCHEMA), releases: z.array(releaseEntry).max(10_000) });

export type ReleaseEntry = z.output<typeof releaseEntry>;
export type ReleaseManifest = z.output<typeof manifestSchema>;

function invalid(why: string, hint = 'the release server publishes a broken manifest; try again later, or report it'): BangerError {
  return new BangerError('RELEASE_INVALID', why, { hint });
}

/** The manifest's text, checked: a newer schema, or anything malformed, is refused. */
export function parseManifest(text: string): ReleaseManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalid(`the release manifest is not JSON: ${(err as Error).message}`);
  }
  const schema = (raw as { schema?: unknown } | null)?.schema;
  if (typeof schema === 'number' && schema > MANIFEST_SCHEMA) {
    throw invalid(`the release manifest has schema ${schema}, newer than this banger reads (${MANIFEST_SCHEMA})`,
      'a newer banger is needed to read it: install the newest release by hand (its install.sh), then banger update works again');
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw invalid(`the release manifest is malformed: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** <0, 0, >0 as `a` is older than, the same as, or newer than `b`; a pre-release is older than its release. */
export function compareVersions(a: string, b: string): number {
  const [mainA = '', preA] = a.split(/-(.*)/s);
  const [mainB = '', preB] = b.split(/-(.*)/s);
  const pa = mainA.split('.').map(Number);
  const pb = mainB.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  if (preA === undefined || preB === undefined) return preA === preB ? 0 : preA === undefined ? 1 : -1;
  return preA < preB ? -1 : preA > preB ? 1 : 0;
}

/** The release to install: `to` exactly, else the newest stable one (no pre-release). */
export function chooseRelease(manifest: ReleaseManifest, to?: string): ReleaseEntry {
  if (to !== undefined) {
    const want = to.replace(/^v/, '');
    const found = manifest.releases.find((r) => r.version === want);
    if (!found) {
      const known = manifest.releases.map((r) => r.version).sort(compareVersions).slice(-5);
      throw new BangerError('INVALID_ARGUMENT', `there is no release ${to}`, { hint: `releases: ${known.join(', ') || 'none'} (banger update --check shows the newest)` });
    }
    return found;
  }
  const stable = manifest.releases.filter((r) => r.channel === 'stable' && !r.version.includes('-')).sort((a, b) => compareVersions(a.version, b.version));
  const newest = stable.at(-1);
  if (!newest) throw invalid('the release manifest lists no stable release');
  return newest;
}

/** SHA256SUMS as sha256sum writes it: file name → lowercase hex. A malformed line refuses the whole file. */
export function parseSha256Sums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^([0-9a-f]{64}) [ *]([^/\s][^/]*)$/.exec(line);
    if (!m) throw new BangerError('RELEASE_INVALID', `SHA256SUMS has a malformed line: ${JSON.stringify(line.slice(0, 120))}`, { hint: 'the release is damaged; try again later, or report it' });
    sums.set(m[2]!, m[1]!);
  }
  return sums;
}

/** Whether `signatureB64` (cosign's base64 DER ECDSA) signs `data` with the P-256 key in `publicKeyPem`. */
export function signatureValid(data: Buffer, signatureB64: string, publicKeyPem: string): boolean {
  const signature = Buffer.from(signatureB64.trim(), 'base64');
  if (signature.length === 0 || signature.length > 128) return false;
  const key = crypto.createPublicKey(publicKeyPem);
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new BangerError('INTERNAL', `the release key built into this banger is not an ECDSA P-256 key (${key.asymmetricKeyType})`);
  }
  return crypto.verify('sha256', data, { key, dsaEncoding: 'der' }, signature);
}

/** A cosign-style signature of `data` with an ECDSA P-256 private key (scripts/release.ts; tests). */
export function signBlob(data: Buffer, privateKeyPem: string): string {
  return crypto.sign('sha256', data, { key: privateKeyPem, dsaEncoding: 'der' }).toString('base64');
}
