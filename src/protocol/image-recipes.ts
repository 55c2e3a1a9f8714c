// The built-in images bangerd may ask bangerd-root to build, by name: the contract between the two.
import crypto from 'node:crypto';

export interface DebianRecipe {
  suite: string;
  packages: readonly string[];
  /** Programs from banger's own install put into /usr/local/bin (see src/helper/guest-tools.ts). */
  tools: readonly string[];
}

/** Built-in images by name. A Map: names come from users, and `constructor` must not find anything. */
export const DEFAULT_IMAGES: ReadonlyMap<string, DebianRecipe> = new Map([
  ['debian-bookworm', {
    suite: 'bookworm',
    packages: ['systemd-sysv', 'udev', 'openssh-server', 'iproute2', 'git', 'curl', 'ca-certificates', 'sudo', 'less', 'e2fsprogs', 'procps'],
    tools: ['mise'],
  }],
]);

/** Bump when customizeRootfs or the build changes, so cached images are rebuilt (beside, not over, the old one). */
const RECIPE_REVISION = 6;

/** A short id of what the recipe produces; it names the image's directory. */
export function recipeId(recipe: DebianRecipe): string {
  return crypto.createHash('sha256').update(JSON.stringify({ recipe, RECIPE_REVISION })).digest('hex').slice(0, 12);
}

export const PACKAGE_PATTERN = /^[a-z0-9][a-z0-9.+-]{0,63}$/;
export const SUITE_PATTERN = /^[a-z]{2,20}$/;
