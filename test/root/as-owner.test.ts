// asOwner switches this process's effective ids, which needs root: the root tier (scripts/test-e2e.sh).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { asOwner } from '../../src/system/as-owner.ts';

const NOBODY = { uid: 65534, gid: 65534 };

describe('asOwner', () => {
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-as-owner-'));
    fs.chmodSync(dir, 0o755);
    fs.mkdirSync(path.join(dir, 'owners'));
    fs.chownSync(path.join(dir, 'owners'), NOBODY.uid, NOBODY.gid);
    fs.mkdirSync(path.join(dir, 'roots'), { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'roots', 'secret'), 'root only', { mode: 0o600 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('creates files as the owner, and gives root its ids back', () => {
    const file = path.join(dir, 'owners', 'made');
    asOwner(NOBODY, () => fs.writeFileSync(file, 'x'));
    assert.equal(fs.statSync(file).uid, NOBODY.uid);
    assert.equal(fs.statSync(file).gid, NOBODY.gid);
    assert.equal(process.geteuid!(), 0);
    assert.equal(process.getegid!(), 0);
  });

  it("gets only the owner's rights: a symlink to a root file cannot be read or written through", () => {
    const link = path.join(dir, 'owners', 'link');
    fs.symlinkSync(path.join(dir, 'roots', 'secret'), link);
    assert.throws(() => asOwner(NOBODY, () => fs.readFileSync(link)), /EACCES/);
    assert.throws(() => asOwner(NOBODY, () => fs.writeFileSync(link, 'owned')), /EACCES/);
    assert.throws(() => asOwner(NOBODY, () => fs.writeFileSync(path.join(dir, 'roots', 'new'), 'x')), /EACCES/);
    assert.equal(fs.readFileSync(path.join(dir, 'roots', 'secret'), 'utf8'), 'root only');
  });

  it('gives root its ids back when the function throws', () => {
    assert.throws(() => asOwner(NOBODY, () => {
      throw new Error('boom');
    }), /boom/);
    assert.equal(process.geteuid!(), 0);
  });

  it('for a root owner runs the function as it is', () => {
    assert.equal(asOwner({ uid: 0, gid: 0 }, () => process.geteuid!()), 0);
  });
});
