// Programs the default image carries that Debian's archive does not have: today mise, for the workspace's tooling
// bootstrap. They come from banger's own install (npm packages that ship the Linux binary), never from the
// network at build time, and the helper finds them itself: it takes no path to copy from its caller.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { BangerError } from '../protocol/errors.ts';

export interface GuestTool {
  name: string;
  /** Absolute path of the binary on the host. */
  source: string;
  /** Where it goes in the image, relative to its root. */
  dest: string;
}

/** npm packages that ship each tool's x86_64 Linux binary, and the binary's path inside the package. */
const TOOL_PACKAGES: ReadonlyMap<string, { pkg: string; bin: string }> = new Map([
  ['mise', { pkg: '@jdxcode/mise-linux-x64', bin: 'bin/mise' }],
]);

/** Finds each named tool in banger's install; a missing one is MISSING_TOOL naming how to install it. */
export function findGuestTools(names: readonly string[], from: string = import.meta.url): GuestTool[] {
  const require = createRequire(from);
  return names.map((name) => {
    const known = TOOL_PACKAGES.get(name);
    if (!known) throw new BangerError('INVALID_ARGUMENT', `the image recipe asks for ${name}, which banger cannot put into images`, { hint: `known tools: ${[...TOOL_PACKAGES.keys()].join(', ')}` });
    let source: string;
    try {
      source = path.join(path.dirname(require.resolve(`${known.pkg}/package.json`)), known.bin);
    } catch (err) {
      throw new BangerError('MISSING_TOOL', `${known.pkg} (the ${name} binary for guests) is not installed with banger`, { hint: 'install banger\'s dependencies: bash scripts/setup.sh', cause: err });
    }
    if (!fs.existsSync(source)) throw new BangerError('MISSING_TOOL', `${source} is missing`, { hint: 'reinstall banger\'s dependencies: rm -rf node_modules && bash scripts/setup.sh' });
    return { name, source, dest: path.join('usr/local/bin', name) };
  });
}

/** Copies the tools into a root tree, executable by everyone. */
export function installGuestTools(root: string, tools: readonly GuestTool[]): void {
  for (const tool of tools) {
    const dest = path.join(root, tool.dest);
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(tool.source, dest);
    fs.chmodSync(dest, 0o755);
  }
}
