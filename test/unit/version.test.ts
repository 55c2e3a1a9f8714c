// What every part says about its build, and how bangerd stands to a store without writing it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { versionLine, VERSION } from '../../src/version.ts';
import { checkMigrations, Store } from '../../src/store/store.ts';
import { MIGRATIONS } from '../../src/store/migrations.ts';

const root = path.resolve(import.meta.dirname, '../..');
const node = process.execPath;

describe('versions', () => {
  it('names the commit and build time of a build, and a development run as such', () => {
    assert.equal(versionLine('bangerd', { version: '1.2.3', commit: 'abc123def456', builtAt: '2026-11-24T03:00:00Z' }), 'bangerd 1.2.3 (commit abc123def456, built 2026-11-24T03:00:00Z)');
    assert.equal(versionLine('bangerd-root', { version: '1.2.3', commit: null, builtAt: null }), 'bangerd-root 1.2.3 (development build)');
  });

  it('bangerd and bangerd-root print one line for --version, without needing root, a config or a daemon', () => {
    for (const [name, main] of [['bangerd', 'src/daemon/main.ts'], ['bangerd-root', 'src/helper/main.ts']] as const) {
      const r = spawnSync(node, [path.join(root, main), '--version'], { encoding: 'utf8', env: { ...process.env, BANGER_HOME: '/nonexistent/banger-home' } });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${name} ${VERSION} (development build)\n`);
    }
  });
});

describe('bangerd --check-migrations', () => {
  it('exits 0 for a current store, 1 for one it will migrate or create, 2 for a newer one, and writes none', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-migrations-'));
    try {
      // Where bangerd with BANGER_HOME=dir keeps its store.
      fs.mkdirSync(path.join(dir, 'state'));
      const db = path.join(dir, 'state', 'banger.db');
      assert.equal(checkMigrations(db).status, 1);
      assert.equal(fs.existsSync(db), false, 'nothing is created');
      new Store(db).close();
      assert.deepEqual(checkMigrations(db), { status: 0, message: `the store is at schema version ${MIGRATIONS.length}, this banger's` });
      const raw = new DatabaseSync(db);
      raw.exec(`PRAGMA user_version = ${MIGRATIONS.length - 1}`);
      assert.equal(checkMigrations(db).status, 1);
      raw.exec(`PRAGMA user_version = ${MIGRATIONS.length + 1}`);
      raw.close();
      const before = fs.readFileSync(db);
      const r = spawnSync(node, [path.join(root, 'src/daemon/main.ts'), '--check-migrations'], { encoding: 'utf8', env: { ...process.env, BANGER_HOME: dir } });
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stdout, /newer than this banger knows/);
      assert.deepEqual(fs.readFileSync(db), before, 'the store is left as it was');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
