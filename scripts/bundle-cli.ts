// Bundles the CLI (src/cli/main.ts) for a faster start: run by the build after tsc, which still type-checks and
// emits dist/ (the SDK export and the daemons). bin/launch.js runs the bundle for cli/main when dist/ is fresh.
//
// - Code splitting keeps the commands lazy: each `import('./commands/….ts')` becomes a chunk loaded when it runs.
// - Every file lands directly in dist/ (dist/banger-cli.js, dist/banger-cli-HASH.js). A module's
//   `import.meta.url` becomes the URL of its own tsc output (src/system/x.ts: dist/system/x.js), so paths it
//   builds from it (../package.json, ../../bin/) point where they do when dist/ runs unbundled.
// - Built-in modules come from process.getBuiltinModule instead of an ESM `import`: an ESM import of a built-in
//   builds a namespace of all its exports, which runs lazy getters (node:fs's `promises` loads fs/promises,
//   readline and more), and commander's `require`s need no createRequire shim.
// - Whitespace and syntax are minified (less to read and parse at every start); names are kept, so a stack trace
//   (BANGER_DEBUG=1) still names the functions.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

const builtins: esbuild.Plugin = {
  name: 'builtins',
  setup(build) {
    build.onResolve({ filter: /^node:/ }, (args) => ({ path: args.path, namespace: 'builtin' }));
    build.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

const moduleUrls: esbuild.Plugin = {
  name: 'module-urls',
  setup(build) {
    build.onLoad({ filter: /\/src\/.*\.ts$/ }, (args) => {
      const source = fs.readFileSync(args.path, 'utf8');
      const relative = path.relative(path.join(root, 'src'), args.path);
      if (/import\.meta\.(dirname|filename)/.test(source)) {
        return { errors: [{ text: `${relative}: use import.meta.url (bundle-cli.ts maps it to the module's dist/ file)` }] };
      }
      const url = `new URL(${JSON.stringify(`./${relative.replace(/\.ts$/, '.js')}`)}, import.meta.url).href`;
      return { contents: source.replaceAll('import.meta.url', url), loader: 'ts' };
    });
  },
};

await esbuild.build({
  absWorkingDir: root,
  entryPoints: { 'banger-cli': 'src/cli/main.ts' },
  outdir: 'dist',
  chunkNames: 'banger-cli-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node24',
  minifyWhitespace: true,
  minifySyntax: true,
  plugins: [builtins, moduleUrls],
  logLevel: 'warning',
});
