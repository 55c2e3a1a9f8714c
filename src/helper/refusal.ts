// How bangerd-root says no: HELPER_REFUSED, "bangerd-root refused: <what>", before it has touched the host.
import type { z } from 'zod';
import { BangerError } from '../protocol/errors.ts';
import { parseParams, type ParamsRefusal } from '../protocol/params.ts';
import { oversizedProblem } from './param-bounds.ts';

/** bangerd only sends what it validated itself, so a refusal means a bug or a bangerd from another banger. */
const REFUSAL_HINT = 'bangerd-root runs only requests about banger\'s own files and network; if a banger command caused this, restart both from the same install (banger daemon stop && banger daemon start) and report it if it persists';

export function refuse(message: string, hint: string = REFUSAL_HINT): never {
  throw new BangerError('HELPER_REFUSED', `bangerd-root refused: ${message}`, { hint });
}

/** bangerd-root's wording for params that do not fit their schema: bangerd sent them, so the two disagree. */
const PARAMS_REFUSAL: ParamsRefusal = {
  code: 'HELPER_REFUSED',
  prefix: 'bangerd-root refused: ',
  hint: 'bangerd and bangerd-root disagree on this request; restart both from the same banger install: banger daemon stop && banger daemon start',
  // bangerd always sends params, even {}; none at all is not a request bangerd makes.
  absentIsEmpty: false,
};

/**
 * Parses a request's params with its strict schema, or refuses naming each bad field (null params, wrong
 * types, unknown fields, strings and lists past param-bounds.ts's limits), before any work starts.
 */
export function refuseInvalid<S extends z.ZodType>(schema: S, method: string, raw: unknown): z.output<S> {
  const oversized = oversizedProblem(method, raw);
  if (oversized !== null) refuse(oversized, PARAMS_REFUSAL.hint);
  return parseParams(schema, method, raw, PARAMS_REFUSAL);
}
