// Writes dist/build-info.json: the commit dist/ was built from and when, which `banger version` and every
// binary's --version report (src/version.ts). Run by the build after tsc. Outside a git checkout (a release
// tarball) the commit comes from BANGER_COMMIT, else it is "unknown".
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const git = spawnSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8' });
const dirty = spawnSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8' });
const commit = process.env.BANGER_COMMIT ?? (git.status === 0 ? `${git.stdout.trim()}${dirty.status === 0 && dirty.stdout.trim() !== '' ? '-dirty' : ''}` : 'unknown');
fs.writeFileSync(path.join(root, 'dist', 'build-info.json'), `${JSON.stringify({ commit, builtAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z') })}\n`);
