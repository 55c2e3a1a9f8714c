import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ownerArgv } from '../../src/system/as-owner.ts';

describe('ownerArgv', () => {
  it('drops to the owner with setpriv, and does nothing for root', () => {
    assert.deepEqual(ownerArgv({ uid: 1000, gid: 100 }), ['setpriv', '--reuid=1000', '--regid=100', '--init-groups', '--']);
    assert.deepEqual(ownerArgv({ uid: 0, gid: 0 }), []);
  });
});
