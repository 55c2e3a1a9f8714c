// How bangerd-root says no: HELPER_REFUSED, "bangerd-root refused: <what>", before it has touched the host.
import type { z } from 'zod';
import { BangerError } from '../protocol/errors.ts';

/** bangerd only sends what it validated itself, so a refusal means a bug or a bangerd from another banger. */
const REFUSAL_HINT = 'bangerd-root runs only requests about banger\'s own files and network; if a banger command caused this, restart both from the same install (banger daemon stop && banger daemon start) and report it if it persists';

export function refuse(message: string, hint: string = REFUSAL_HINT): never {
  throw new BangerError('HELPER_REFUSED', `bangerd-root refused: ${message}`, { hint });
}

/** `params.spec.disks[0].path` for the path zod reports. */
function fieldName(at: readonly PropertyKey[]): string {
  return at.reduce<string>((name, key) => (typeof key === 'number' ? `${name}[${key}]` : `${name}.${String(key)}`), 'params');
}

/** The value at `at` inside `raw`, to say what came instead of what was expected. */
function valueAt(raw: unknown, at: readonly PropertyKey[]): unknown {
  let value = raw;
  for (const key of at) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** "a string", "an object", "a list". */
function aKind(kind: string): string {
  if (kind === 'array') return 'a list';
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}`;
}

function describe(value: unknown): string {
  if (value === undefined) return 'it is missing';
  if (value === null) return 'got null';
  return `got ${aKind(Array.isArray(value) ? 'array' : typeof value)}`;
}

/** One sentence per zod issue, naming the field. */
function issueText(issue: z.core.$ZodIssue, raw: unknown): string {
  const field = fieldName(issue.path);
  switch (issue.code) {
    case 'invalid_type': {
      const value = valueAt(raw, issue.path);
      return value === undefined && issue.path.length > 0 ? `${field} is missing` : `${field} must be ${aKind(issue.expected)}, ${describe(value)}`;
    }
    case 'unrecognized_keys':
      return issue.keys.map((key) => `${fieldName([...issue.path, key])} is not a known field`).join('; ');
    case 'invalid_value':
      return `${field} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(valueAt(raw, issue.path)) ?? 'nothing'}`;
    default:
      return `${field}: ${issue.message}`;
  }
}

/**
 * Parses a request's params with its strict schema, or refuses naming each bad field (null params, wrong
 * types, unknown fields), before any work starts.
 */
export function refuseInvalid<S extends z.ZodType>(schema: S, method: string, raw: unknown): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.slice(0, 5).map((issue) => issueText(issue, raw));
  refuse(`${method}: ${problems.join('; ')}`, 'bangerd and bangerd-root disagree on this request; restart both from the same banger install: banger daemon stop && banger daemon start');
}
