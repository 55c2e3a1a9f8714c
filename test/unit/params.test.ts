import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { BangerError } from '../../src/protocol/errors.ts';
import { parseParams } from '../../src/protocol/params.ts';
import { fails } from '../fakes/expect-error.ts';

const schema = z.strictObject({
  ref: z.string().min(1).max(8),
  count: z.int().min(1).max(5).optional(),
  mode: z.enum(['fast', 'slow']).optional(),
  label: z.string().regex(/^[a-z]+$/, { error: 'must be lowercase letters' }).optional(),
  inner: z.strictObject({ flag: z.boolean() }).optional(),
});
const empty = z.strictObject({});

/** The message parseParams refuses `raw` with; fails the test if it accepts it or throws something else. */
function messageFor(raw: unknown, s: z.ZodType = schema): string {
  try {
    parseParams(s, 'thing.do', raw);
  } catch (err) {
    fails('INVALID_ARGUMENT', undefined, { hint: true })(err);
    return (err as BangerError).message;
  }
  assert.fail(`accepted ${JSON.stringify(raw)}`);
}

describe('parseParams', () => {
  it('returns the parsed params', () => {
    assert.deepEqual(parseParams(schema, 'thing.do', { ref: 'a', count: 2, inner: { flag: true } }), { ref: 'a', count: 2, inner: { flag: true } });
  });

  it('counts absent params as {} but refuses null and other non-objects', () => {
    assert.deepEqual(parseParams(empty, 'thing.list', undefined), {});
    assert.deepEqual(parseParams(empty, 'thing.list', {}), {});
    assert.equal(messageFor(null, empty), 'thing.do: params must be an object (got null)');
    assert.equal(messageFor([], empty), 'thing.do: params must be an object (got a list)');
    assert.equal(messageFor(7, empty), 'thing.do: params must be an object (got number)');
  });

  it('names the field and the type it got', () => {
    assert.equal(messageFor({ ref: 123 }), 'thing.do: ref must be a string (got number)');
    assert.equal(messageFor({ ref: ['a'] }), 'thing.do: ref must be a string (got a list)');
    assert.equal(messageFor({ ref: { a: 1 } }), 'thing.do: ref must be a string (got an object)');
    assert.equal(messageFor({ ref: 'a', inner: { flag: 'yes' } }), 'thing.do: inner.flag must be true or false (got string)');
  });

  it('names a missing field', () => {
    assert.equal(messageFor({}), 'thing.do: ref is required');
  });

  it('refuses numbers that are not whole or out of range', () => {
    assert.equal(messageFor({ ref: 'a', count: 1.5 }), 'thing.do: count must be a whole number (got 1.5)');
    assert.equal(messageFor({ ref: 'a', count: 0 }), 'thing.do: count must be at least 1 (got 0)');
    assert.equal(messageFor({ ref: 'a', count: 6 }), 'thing.do: count must be at most 5 (got 6)');
    assert.equal(messageFor({ ref: 'a', count: 9e99 }), 'thing.do: count must be at most 5 (got 9e+99)');
  });

  it('gives the length of a long string, not the string', () => {
    const message = messageFor({ ref: 'x'.repeat(1024 * 1024) });
    assert.equal(message, 'thing.do: ref must be at most 8 characters (got 1048576)');
    assert.equal(messageFor({ ref: '' }), 'thing.do: ref must not be empty');
  });

  it('refuses unknown fields and lists the known ones in the hint', () => {
    assert.throws(() => parseParams(schema, 'thing.do', { ref: 'a', colour: 'red' }), (err: unknown) => {
      fails('INVALID_ARGUMENT', /^thing\.do: unknown field "colour"$/)(err);
      assert.equal((err as BangerError).hint, 'fix the params of thing.do and call it again; its fields are ref, count, mode, label, inner');
      return true;
    });
    assert.equal(messageFor({ ref: 'a', inner: { flag: true, x: 1 } }), 'thing.do: unknown field "x" in inner');
    assert.throws(() => parseParams(empty, 'thing.list', { x: 1 }), (err: unknown) => (err as BangerError).hint === 'thing.list takes no params: send {} or leave params out');
  });

  it('bounds the message however many keys a peer sends, and however long they are', () => {
    const raw: Record<string, unknown> = { ref: 'a' };
    for (let i = 0; i < 1000; i++) raw[`${'k'.repeat(100)}${i}`] = i;
    const message = messageFor(raw);
    assert.match(message, /^thing\.do: unknown fields "k{40}…", .* and 995 more$/);
    assert.ok(message.length < 400, `short message, got ${message.length} characters`);
  });

  it("words the refusal the caller's way: code, prefix, hint, and absent params refused when asked", () => {
    const refusal = { code: 'HELPER_REFUSED', prefix: 'bangerd-root refused: ', hint: 'restart both', absentIsEmpty: false } as const;
    const refusedWith = (pattern: RegExp) => (err: unknown): boolean => {
      fails('HELPER_REFUSED', pattern)(err);
      assert.equal((err as BangerError).hint, 'restart both');
      return true;
    };
    assert.throws(() => parseParams(schema, 'thing.do', { ref: 5 }, refusal), refusedWith(/^bangerd-root refused: thing\.do: ref must be a string \(got number\)$/));
    assert.throws(() => parseParams(empty, 'thing.list', undefined, refusal), refusedWith(/^bangerd-root refused: thing\.list: params is required$/));
    assert.deepEqual(parseParams(empty, 'thing.list', {}, refusal), {});
  });

  it('uses a message the schema sets itself, and lists several problems', () => {
    assert.equal(messageFor({ ref: 'a', label: 'A!' }), 'thing.do: label must be lowercase letters');
    assert.equal(messageFor({ ref: 5, mode: 'medium' }), 'thing.do: ref must be a string (got number); mode must be one of "fast", "slow" (got "medium")');
  });
});
