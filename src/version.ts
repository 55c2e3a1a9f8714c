import fs from 'node:fs';

/** banger's version, from package.json. */
export const VERSION: string = (JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface BuildInfo {
  version: string;
  /** The git commit it was built from, or null for a development run (from src/, or a tree without git). */
  commit: string | null;
  /** When dist/ was built (ISO 8601), or null for a development run. */
  builtAt: string | null;
  /** Where `banger update` reads the release manifest, fixed when the release was built; null: no release channel. */
  releaseManifest: string | null;
  /** The PEM public key (ECDSA P-256) release signatures must verify against, fixed at build time. */
  releaseKey: string | null;
}

/**
 * What the build stamped into dist/build-info.json (scripts/stamp-build.ts), read beside this module: present
 * when banger runs from dist/, absent when it runs from src/ (a development run, whose version says so).
 */
function readBuildInfo(): BuildInfo {
  try {
    const stamp = JSON.parse(fs.readFileSync(new URL('./build-info.json', import.meta.url), 'utf8')) as Record<string, unknown>;
    const text = (key: string): string | null => (typeof stamp[key] === 'string' ? stamp[key] : null);
    return { version: VERSION, commit: text('commit'), builtAt: text('builtAt'), releaseManifest: text('releaseManifest'), releaseKey: text('releaseKey') };
  } catch {
    return { version: VERSION, commit: null, builtAt: null, releaseManifest: null, releaseKey: null };
  }
}

export const BUILD: BuildInfo = readBuildInfo();

/** One line for --version: `NAME 0.1.0 (commit abc123def456, built 2026-11-24T03:00:00Z)`, or `(development build)`. */
export function versionLine(name: string, build: Pick<BuildInfo, 'version' | 'commit' | 'builtAt'> = BUILD): string {
  const detail = build.builtAt ? `commit ${build.commit ?? 'unknown'}, built ${build.builtAt}` : 'development build';
  return `${name} ${build.version} (${detail})`;
}
