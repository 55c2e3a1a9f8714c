// Refuses imports that point the wrong way between banger's layers (see LAYERS). Run by scripts/setup.sh (the
// build) and scripts/test.sh, so a wrong-way import fails both. TypeScript itself parses the imports
// (ts.preProcessFile: static, dynamic and type-only ones alike); this file only holds the rules. Project
// references would need a composite build per folder, which the bin/ wrappers' run-from-source mode cannot use.
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * What each layer may import besides itself. Dependencies flow downward: cli → sdk → protocol; daemon → services
 * → (vmm, image, kernel, store, system); the helper depends only on system and protocol; protocol on nothing.
 * `version.ts` sits outside the layers and anyone may import it.
 */
export const LAYERS: ReadonlyMap<string, readonly string[]> = new Map([
  ['protocol', []],
  ['system', ['protocol']],
  ['store', ['protocol', 'system']],
  ['kernel', ['protocol', 'system']],
  ['image', ['protocol', 'system']],
  ['vmm', ['protocol', 'system']],
  ['helper', ['protocol', 'system']],
  ['daemon/services', ['protocol', 'system', 'store', 'kernel', 'image', 'vmm']],
  ['daemon', ['daemon/services', 'protocol', 'system', 'store', 'kernel', 'image', 'vmm']],
  ['sdk', ['protocol', 'system']],
  ['cli', ['sdk', 'protocol', 'system']],
]);

const FREE = new Set(['version.ts']);

/** The layer a file under src/ belongs to: the longest LAYERS key that is a prefix of its path. */
export function layerOf(relative: string): string | null {
  let best: string | null = null;
  for (const layer of LAYERS.keys()) {
    if ((relative === layer || relative.startsWith(`${layer}/`)) && (best === null || layer.length > best.length)) best = layer;
  }
  return best;
}

export interface Violation {
  file: string;
  imported: string;
  message: string;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (/\.(ts|mts|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** Every wrong-way import under `srcDir`, plus files that belong to no layer. */
export function checkLayers(srcDir: string): Violation[] {
  const violations: Violation[] = [];
  for (const file of sourceFiles(srcDir)) {
    const rel = path.relative(srcDir, file).split(path.sep).join('/');
    if (FREE.has(rel)) continue;
    const from = layerOf(rel);
    if (from === null) {
      violations.push({ file: rel, imported: '', message: `src/${rel} is in no layer; add its folder to LAYERS in scripts/check-layers.ts` });
      continue;
    }
    const allowed = new Set([from, ...LAYERS.get(from)!]);
    const info = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, true);
    for (const ref of info.importedFiles) {
      if (!ref.fileName.startsWith('.')) continue;
      const target = path.relative(srcDir, path.resolve(path.dirname(file), ref.fileName)).split(path.sep).join('/');
      if (target.startsWith('..') || FREE.has(target)) continue;
      const to = layerOf(target);
      if (to !== null && allowed.has(to)) continue;
      violations.push({
        file: rel,
        imported: ref.fileName,
        message: `src/${rel} (${from}) imports ${ref.fileName} (${to ?? 'no layer'}); ${from} may import only ${[...allowed].join(', ')}`,
      });
    }
  }
  return violations;
}

if (process.argv[1] !== undefined && import.meta.filename === path.resolve(process.argv[1])) {
  const srcDir = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '..', 'src'));
  const violations = checkLayers(srcDir);
  for (const v of violations) process.stderr.write(`check-layers: ${v.message}\n`);
  if (violations.length > 0) {
    process.stderr.write('check-layers: move the shared piece below both of its users (see LAYERS in scripts/check-layers.ts)\n');
    process.exit(1);
  }
}
