// Size limits on every bangerd-root request, whatever its method: applied before its schema, so no op (a new
// one included) ever runs a pattern, a path lookup or a program on a value bigger than any request bangerd
// makes. The JSON-RPC layer already refuses a line over 1 MiB; these bound what fits inside one.

/** The longest string any param may be: PATH_MAX, which also covers names, addresses and kernel command lines. */
export const MAX_PARAM_STRING = 4096;
/** The longest list: image.importLayers takes at most 512 layers. */
export const MAX_PARAM_ITEMS = 512;
/** Fields in one object, and the longest field name. */
export const MAX_PARAM_KEYS = 32;
const MAX_KEY_LENGTH = 64;
/** How deep objects and lists nest (vmm.launchQemu's spec.disks[i].path is 4 deep). */
export const MAX_PARAM_DEPTH = 5;

/** The first value in `raw` past a limit, naming its field and the limit; null when all are within them. */
export function oversizedProblem(method: string, raw: unknown): string | null {
  const visit = (value: unknown, at: string, depth: number): string | null => {
    const field = at === '' ? 'params' : at;
    if (typeof value === 'string') {
      return value.length > MAX_PARAM_STRING ? `${method}: ${field} is ${value.length} characters; at most ${MAX_PARAM_STRING} are accepted` : null;
    }
    if (value === null || typeof value !== 'object') return null;
    if (depth >= MAX_PARAM_DEPTH) return `${method}: ${field} nests deeper than ${MAX_PARAM_DEPTH} levels`;
    if (Array.isArray(value)) {
      if (value.length > MAX_PARAM_ITEMS) return `${method}: ${field} has ${value.length} items; at most ${MAX_PARAM_ITEMS} are accepted`;
      for (const [i, item] of value.entries()) {
        const problem = visit(item, `${at}[${i}]`, depth + 1);
        if (problem !== null) return problem;
      }
      return null;
    }
    const keys = Object.keys(value);
    if (keys.length > MAX_PARAM_KEYS) return `${method}: ${field} has ${keys.length} fields; at most ${MAX_PARAM_KEYS} are accepted`;
    for (const key of keys) {
      if (key.length > MAX_KEY_LENGTH) return `${method}: ${field} has a field name of ${key.length} characters`;
      const problem = visit((value as Record<string, unknown>)[key], at === '' ? key : `${at}.${key}`, depth + 1);
      if (problem !== null) return problem;
    }
    return null;
  };
  return visit(raw, '', 0);
}
