// Builds a banger release from this checkout (see src/system/release.ts for the format `banger update` reads):
//
//   node scripts/release.ts VERSION [--key PRIVATE.pem] [--channel MANIFEST_URL] [--out DIR] [--channel-name stable]
//
// - DIR/VERSION/banger-VERSION-linux-x64.tar.zst: one directory banger-VERSION/ with bin/, the built dist/ and
//   dist-agent/, catalog/, package.json (at VERSION), the production node_modules (Node.js itself included) and
//   install.sh. No src/: it runs what it was built with.
// - DIR/VERSION/SHA256SUMS, and with --key DIR/VERSION/SHA256SUMS.sig (ECDSA P-256 over SHA-256, DER, base64: what
//   `cosign sign-blob --key` writes).
// - DIR/manifest.json: this release added to (or replaced in) the manifest already there.
// The release's dist/build-info.json carries --channel (where its `banger update` looks) and the public half of
// --key (what it verifies the next release with). Without --key the release cannot update itself.
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MANIFEST_SCHEMA, compareVersions, parseManifest, signBlob, type ReleaseEntry } from '../src/system/release.ts';
import { distIsFresh, stageRelease } from '../src/system/release-stage.ts';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { key: { type: 'string' }, channel: { type: 'string' }, out: { type: 'string', default: path.join(root, 'release') }, 'channel-name': { type: 'string', default: 'stable' } },
});
const version = positionals[0] ?? '';
if (positionals.length !== 1 || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(version)) {
  process.stderr.write('usage: scripts/release.sh VERSION [--key PRIVATE.pem] [--channel MANIFEST_URL] [--out DIR] [--channel-name stable]\n');
  process.exit(2);
}
const out = path.resolve(values.out);
const say = (line: string): void => void process.stderr.write(`release: ${line}\n`);

// The build this release ships: made now unless dist/ is newer than every source file.
if (!distIsFresh(root)) {
  say('building dist/ (npm run build)');
  execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
}
if (!fs.existsSync(path.join(root, 'dist-agent', 'banger-agent'))) execFileSync('bash', [path.join(root, 'scripts', 'build-agent.sh')], { stdio: 'inherit' });

const releaseDir = path.join(out, version);
const stage = path.join(out, `.stage-${version}-${process.pid}`);
const top = path.join(stage, `banger-${version}`);
fs.rmSync(stage, { recursive: true, force: true });
fs.mkdirSync(stage, { recursive: true });
try {
  let releaseKey: string | null = null;
  let privateKey: string | null = null;
  if (values.key) {
    privateKey = fs.readFileSync(values.key, 'utf8');
    releaseKey = crypto.createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString();
  }
  const built = JSON.parse(fs.readFileSync(path.join(root, 'dist', 'build-info.json'), 'utf8')) as { commit: string };
  const builtAt = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  stageRelease(root, top, version, { commit: built.commit, builtAt, releaseManifest: values.channel ?? null, releaseKey });

  fs.mkdirSync(releaseDir, { recursive: true });
  const name = `banger-${version}-linux-x64.tar.zst`;
  const tarball = path.join(releaseDir, name);
  say(`packing ${tarball}`);
  execFileSync('tar', ['-C', stage, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-I', 'zstd -T0 -3 -q', '-cf', tarball, `banger-${version}`], { stdio: 'inherit' });
  const sha256 = crypto.createHash('sha256').update(fs.readFileSync(tarball)).digest('hex');
  const sums = Buffer.from(`${sha256}  ${name}\n`);
  fs.writeFileSync(path.join(releaseDir, 'SHA256SUMS'), sums);
  if (privateKey) fs.writeFileSync(path.join(releaseDir, 'SHA256SUMS.sig'), `${signBlob(sums, privateKey)}\n`);

  const manifestFile = path.join(out, 'manifest.json');
  const releases: ReleaseEntry[] = fs.existsSync(manifestFile) ? parseManifest(fs.readFileSync(manifestFile, 'utf8')).releases.filter((r) => r.version !== version) : [];
  releases.push({
    version, channel: values['channel-name'], published: builtAt, tarball: `${version}/${name}`, size: fs.statSync(tarball).size,
    sha256sums: `${version}/SHA256SUMS`, signature: `${version}/SHA256SUMS.sig`,
  });
  releases.sort((a, b) => compareVersions(a.version, b.version));
  fs.writeFileSync(`${manifestFile}.tmp`, `${JSON.stringify({ schema: MANIFEST_SCHEMA, releases }, null, 2)}\n`);
  fs.renameSync(`${manifestFile}.tmp`, manifestFile);
  process.stdout.write(`${JSON.stringify({ version, tarball, sha256, size: fs.statSync(tarball).size, signed: privateKey !== null, manifest: manifestFile })}\n`);
} finally {
  fs.rmSync(stage, { recursive: true, force: true });
}
