import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { findExecutable } from '../../src/system/executable.ts';
import { fails } from '../fakes/expect-error.ts';

describe('findExecutable', () => {
  it('finds a program on PATH and refuses directories and missing names', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-which-'));
    try {
      fs.writeFileSync(path.join(dir, 'tool'), '', { mode: 0o755 });
      fs.mkdirSync(path.join(dir, 'adir'));
      assert.equal(findExecutable('tool', `/nonexistent:${dir}`), path.join(dir, 'tool'));
      assert.throws(() => findExecutable('adir', dir), fails('MISSING_TOOL'));
      assert.throws(() => findExecutable('nope', dir), fails('MISSING_TOOL'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
