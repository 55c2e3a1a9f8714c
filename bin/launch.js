// Runs one of banger's programs (cli/main, daemon/main, helper/main): the compiled dist/ when it is at least as new
// as every file under src/ (it starts faster), the TypeScript sources directly otherwise, so an edit is never
// silently ignored. The check is a walk of src/ in this process: cheaper than starting `find` from the shell.
// For cli/main the compiled form is the bundle scripts/bundle-cli.ts writes (dist/banger-cli.js), else dist/cli/main.js.
//
// node:fs comes from process.getBuiltinModule: an ESM `import fs from 'node:fs'` builds the namespace of all its
// exports, whose lazy getters load fs/promises, readline and more (a few ms at every start).
import path from 'node:path';

const fs = process.getBuiltinModule('node:fs');
const root = path.dirname(import.meta.dirname);
const entry = process.argv[2];
if (!/^(cli|daemon|helper)\/main$/.test(entry ?? '')) {
  process.stderr.write(`banger: bin/launch.js: unknown program ${JSON.stringify(entry)}\n`);
  process.exit(70);
}
// The program sees its own arguments where it expects them.
process.argv.splice(2, 1);

function newerThan(dir, stamp) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = `${dir}/${e.name}`;
    if (e.isDirectory() ? newerThan(full, stamp) : fs.statSync(full).mtimeMs > stamp) return true;
  }
  return false;
}

let stamp = -1;
try {
  stamp = fs.statSync(path.join(root, 'dist', '.stamp')).mtimeMs;
} catch {
  // Never built: run the sources.
}
// A release has no src/ at all: it runs what it was built with.
const compiled = stamp >= 0 && (!fs.existsSync(path.join(root, 'src')) || !newerThan(path.join(root, 'src'), stamp));
if (!compiled) {
  await import(path.join(root, 'src', `${entry}.ts`));
} else if (entry === 'cli/main') {
  const bundle = path.join(root, 'dist', 'banger-cli.js');
  let loaded = false;
  try {
    await import(bundle);
    loaded = true;
  } catch (err) {
    // A dist/ built without the bundle (tsc alone): the unbundled output is just as current.
    if (!(err?.code === 'ERR_MODULE_NOT_FOUND' && err.url === process.getBuiltinModule('node:url').pathToFileURL(bundle).href)) throw err;
  }
  if (!loaded) await import(path.join(root, 'dist', 'cli', 'main.js'));
} else {
  await import(path.join(root, 'dist', `${entry}.js`));
}
