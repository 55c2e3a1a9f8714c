import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { findGuestTools, installGuestTools } from '../../src/helper/guest-tools.ts';
import { DEFAULT_IMAGES } from '../../src/protocol/image-recipes.ts';
import { fails } from '../fakes/expect-error.ts';

describe('guest tools', () => {
  it('the default image asks for mise, and banger\'s install has its Linux binary', () => {
    assert.deepEqual(DEFAULT_IMAGES.get('debian-bookworm')?.tools, ['mise']);
    const [mise] = findGuestTools(['mise']);
    assert.equal(mise?.dest, 'usr/local/bin/mise');
    assert.ok(fs.statSync(mise!.source).mode & 0o100, 'executable');
  });

  it('copies each tool into the tree, executable by everyone', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-tools-'));
    try {
      const source = path.join(dir, 'tool');
      fs.writeFileSync(source, '#!/bin/sh\n', { mode: 0o700 });
      installGuestTools(path.join(dir, 'root'), [{ name: 'tool', source, dest: 'usr/local/bin/tool' }]);
      assert.equal(fs.statSync(path.join(dir, 'root/usr/local/bin/tool')).mode & 0o777, 0o755);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a tool it does not know, and says how to install a missing package', () => {
    assert.throws(() => findGuestTools(['nope']), fails('INVALID_ARGUMENT', /cannot put into images/, { hint: true }));
    const elsewhere = pathToFileURL(path.join(os.tmpdir(), 'no-node-modules-here', 'x.js')).href;
    assert.throws(() => findGuestTools(['mise'], elsewhere), fails('MISSING_TOOL', /@jdxcode\/mise-linux-x64/, { hint: true }));
  });
});
