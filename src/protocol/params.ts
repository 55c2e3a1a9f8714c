// Checks an RPC's params against its zod schema before any work runs, and turns what is wrong into one error
// that names each field. Both bangerd (INVALID_ARGUMENT) and bangerd-root (HELPER_REFUSED, see
// helper/refusal.ts) parse their params through here.
import { z } from 'zod';
import { BangerError, type ErrorCode } from './errors.ts';

/** How many problems one message lists, and how much of a value it quotes: params come from any peer. */
const MAX_PROBLEMS = 5;
const MAX_QUOTE = 40;

/**
 * Stands in for zod's own wording, so a message a schema sets itself (such as the VM name rule) can be told
 * from one this file words.
 */
const OURS = '\u0000banger-default';

/** How a server words its refusal of bad params; bangerd's is the default. */
export interface ParamsRefusal {
  /** INVALID_ARGUMENT unless set. */
  code?: ErrorCode;
  /** Put before `<method>: <what is wrong>`. */
  prefix?: string;
  /** Replaces the hint that lists the method's fields. */
  hint?: string;
  /** Whether absent params count as `{}` (true unless set); when false they are refused as missing. */
  absentIsEmpty?: boolean;
}

/**
 * Params checked by `schema`. Absent params count as `{}` unless `refusal` says otherwise, so a method without
 * parameters accepts both; null and other non-objects are refused like any other wrong type.
 */
export function parseParams<S extends z.ZodType>(schema: S, method: string, raw: unknown, refusal: ParamsRefusal = {}): z.output<S> {
  const absentIsEmpty = refusal.absentIsEmpty ?? true;
  const result = schema.safeParse(raw === undefined && absentIsEmpty ? {} : raw, { reportInput: true, error: () => OURS });
  if (result.success) return result.data;
  const problems = lastPerPath(result.error.issues).map(describeIssue);
  const shown = problems.slice(0, MAX_PROBLEMS);
  if (problems.length > shown.length) shown.push(`and ${problems.length - shown.length} more`);
  throw new BangerError(refusal.code ?? 'INVALID_ARGUMENT', `${refusal.prefix ?? ''}${method}: ${shown.join('; ')}`, {
    hint: refusal.hint ?? hintFor(method, schema),
  });
}

function hintFor(method: string, schema: z.ZodType): string {
  if (!(schema instanceof z.ZodObject)) return `fix the params of ${method} and call it again`;
  const fields = Object.keys(schema.shape);
  if (fields.length === 0) return `${method} takes no params: send {} or leave params out`;
  return `fix the params of ${method} and call it again; its fields are ${fields.join(', ')}`;
}

/** A number too big for an integer also breaks the integer's own bound; the schema's bound is the one to report. */
function lastPerPath(issues: readonly z.core.$ZodIssue[]): z.core.$ZodIssue[] {
  const byPath = new Map<string, z.core.$ZodIssue>();
  for (const issue of issues) byPath.set(JSON.stringify(issue.path), issue);
  return [...byPath.values()];
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const field = pathOf(issue.path);
  if (issue.message !== OURS) return `${field} ${issue.message}`;
  const input: unknown = issue.input;
  switch (issue.code) {
    case 'invalid_type': {
      if (input === undefined) return `${field} is required`;
      const expected = EXPECTED[issue.expected] ?? issue.expected;
      // A number that is not whole is the right type with the wrong value: show the value.
      const got = issue.expected === 'int' && typeof input === 'number' ? String(input) : typeNameOf(input);
      return `${field} must be ${expected} (got ${got})`;
    }
    case 'too_small':
      if (issue.origin === 'string' && Number(issue.minimum) === 1) return `${field} must not be empty`;
      return `${field} must be at least ${String(issue.minimum)}${unitOf(issue.origin)} (got ${sizeOf(input)})`;
    case 'too_big':
      return `${field} must be at most ${String(issue.maximum)}${unitOf(issue.origin)} (got ${sizeOf(input)})`;
    case 'unrecognized_keys': {
      const keys = issue.keys.slice(0, MAX_PROBLEMS).map(quote).join(', ');
      const more = issue.keys.length > MAX_PROBLEMS ? ` and ${issue.keys.length - MAX_PROBLEMS} more` : '';
      const where = issue.path.length === 0 ? '' : ` in ${field}`;
      return `unknown field${issue.keys.length === 1 ? '' : 's'} ${keys}${more}${where}`;
    }
    case 'invalid_value':
      return `${field} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')} (got ${quote(input)})`;
    case 'invalid_format':
      return `${field} is not a valid ${issue.format} (got ${quote(input)})`;
    default:
      return `${field} is invalid`;
  }
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object',
  array: 'a list',
};

function pathOf(path: readonly PropertyKey[]): string {
  if (path.length === 0) return 'params';
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

function typeNameOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

function unitOf(origin: string): string {
  return origin === 'string' ? ' characters' : origin === 'array' ? ' items' : '';
}

/** A number as itself, a string or list by its length: the value may be a megabyte long. */
function sizeOf(value: unknown): string {
  if (typeof value === 'string' || Array.isArray(value)) return String(value.length);
  return typeof value === 'number' ? String(value) : typeNameOf(value);
}

/** A short value as JSON, a long string cut, anything else by its type. */
function quote(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > MAX_QUOTE ? `${value.slice(0, MAX_QUOTE)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return typeNameOf(value);
}
