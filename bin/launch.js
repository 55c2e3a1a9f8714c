// Runs one of banger's programs (cli/main, daemon/main, helper/main): the compiled dist/ when it is at least as new
// as every file under src/ (it starts faster), the TypeScript sources directly otherwise, so an edit is never
// silently ignored. The check is a walk of src/ in this process: cheaper than starting `find` from the shell.
import fs from 'node:fs';
import path from 'node:path';

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
    const full = path.join(dir, e.name);
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
const compiled = stamp >= 0 && !newerThan(path.join(root, 'src'), stamp);
await import(compiled ? path.join(root, 'dist', `${entry}.js`) : path.join(root, 'src', `${entry}.ts`));
