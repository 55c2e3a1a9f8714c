// Where an import unpacks its tree: memory when it is small next to the memory available, else the disk.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_WORK_ROOT, imageSizeFor, IMAGE_HEADROOM_BYTES, MEMORY_WORK_ROOT, workRootFor } from '../../src/helper/ext4-image.ts';

describe('workRootFor', () => {
  it('takes memory for a tree of at most a quarter of MemAvailable, the disk otherwise or when it cannot tell', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-meminfo-'));
    try {
      const meminfo = path.join(dir, 'meminfo');
      fs.writeFileSync(meminfo, 'MemTotal:       24684092 kB\nMemFree:        1000 kB\nMemAvailable:    4194304 kB\n');
      const memory = fs.existsSync(MEMORY_WORK_ROOT) ? MEMORY_WORK_ROOT : DEFAULT_WORK_ROOT;
      assert.equal(workRootFor(1024 ** 3, meminfo), memory);
      assert.equal(workRootFor(1024 ** 3 + 1, meminfo), DEFAULT_WORK_ROOT);
      assert.equal(workRootFor(1, path.join(dir, 'missing')), DEFAULT_WORK_ROOT);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('imageSizeFor', () => {
  it('is a quarter more than the files plus the headroom, at least the minimum, in whole MiB', () => {
    assert.equal(imageSizeFor(0), IMAGE_HEADROOM_BYTES);
    assert.equal(imageSizeFor(4 * 1024 ** 2), 5 * 1024 ** 2 + IMAGE_HEADROOM_BYTES);
    assert.equal(imageSizeFor(1, 8 * 1024 ** 3), 8 * 1024 ** 3);
  });
});
