import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PARAM_ITEMS, MAX_PARAM_STRING, oversizedProblem } from '../../src/helper/param-bounds.ts';
import { refuseInvalid } from '../../src/helper/refusal.ts';
import { tapParamsSchema } from '../../src/protocol/helper-schemas.ts';
import { fails } from '../fakes/expect-error.ts';

const deep = (levels: number): unknown => (levels === 0 ? 'x' : { a: deep(levels - 1) });

describe('bangerd-root request size limits', () => {
  it('passes requests of the sizes bangerd sends', () => {
    assert.equal(oversizedProblem('m', { tap: 'bgt0123456789ab', spec: { disks: [{ path: '/'.repeat(MAX_PARAM_STRING) }] } }), null);
    assert.equal(oversizedProblem('m', { layers: Array.from({ length: MAX_PARAM_ITEMS }, () => ({ digest: 'sha256:00' })) }), null);
    assert.equal(oversizedProblem('m', null), null);
  });

  for (const [what, raw, pattern] of [
    ['a string past PATH_MAX', { tap: 'x'.repeat(MAX_PARAM_STRING + 1) }, /m: tap is 4097 characters; at most 4096/],
    ['a nested string past PATH_MAX', { spec: { disks: [{ path: 'x'.repeat(1024 * 1024) }] } }, /m: spec\.disks\[0\]\.path is 1048576 characters/],
    ['a list of more than 512', { layers: Array.from({ length: MAX_PARAM_ITEMS + 1 }, () => 1) }, /m: layers has 513 items/],
    ['an object with 1000 fields', Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`f${i}`, i])), /m: params has 1000 fields/],
    ['a 100-character field name', { ['k'.repeat(100)]: 1 }, /field name of 100 characters/],
    ['objects nested 50 deep', deep(50), /nests deeper than 5 levels/],
  ] as const) {
    it(`finds ${what}`, () => {
      assert.match(oversizedProblem('m', raw) ?? 'none', pattern);
    });
  }

  it('is applied before the schema, as HELPER_REFUSED', () => {
    assert.throws(() => refuseInvalid(tapParamsSchema, 'net.createTap', { tap: 'b'.repeat(5000), bridge: 'banger0', netns: null }), fails('HELPER_REFUSED', /^bangerd-root refused: net\.createTap: tap is 5000 characters/, { hint: true }));
  });
});
