import assert from 'node:assert/strict';
import { BangerError, type ErrorCode } from '../../src/protocol/errors.ts';

/** A validator for assert.throws/rejects: a BangerError with this code, a matching message and, if asked, a hint. */
export function fails(code: ErrorCode, pattern?: RegExp, options: { hint?: boolean } = {}) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof BangerError, `a BangerError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (pattern) assert.match(err.message, pattern);
    if (options.hint) assert.ok(err.hint && err.hint.length > 0, `a hint for: ${err.message}`);
    return true;
  };
}
