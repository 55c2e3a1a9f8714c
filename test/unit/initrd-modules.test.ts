import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { buildBaseInitrd, GUEST_MODULES, OVERLAY_MODULES } from '../../src/kernel/initrd.ts';
import { FakeProcessRunner } from '../fakes/fake-process-runner.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-initrd-modules-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A modules directory whose modules.dep lists every guest module and the optional ones; only `carried` are files. */
function modulesDir(name: string, carried: (file: string) => boolean): string {
  const d = path.join(dir, name);
  const files = [...GUEST_MODULES, ...OVERLAY_MODULES].map((m) => `kernel/${m}.ko`);
  fs.mkdirSync(path.join(d, 'kernel'), { recursive: true });
  fs.writeFileSync(path.join(d, 'modules.dep'), files.map((f) => `${f}:`).join('\n'));
  for (const f of files.filter(carried)) fs.writeFileSync(path.join(d, f), `\x7fELF ${f}`);
  return d;
}

async function modulesIn(modules: string): Promise<string> {
  const busybox = path.join(dir, 'busybox');
  fs.writeFileSync(busybox, 'busybox');
  const built = await buildBaseInitrd({ runner: new FakeProcessRunner(), modulesDir: modules, busybox });
  // Uncompressed since boot got faster; gzip before.
  const cpio = built[0] === 0x1f && built[1] === 0x8b ? gunzipSync(built) : built;
  const at = cpio.lastIndexOf('etc/banger-modules');
  assert.ok(at > 0);
  return cpio.subarray(at, at + 400).toString('latin1');
}

describe('the base initrd\'s modules', () => {
  it('carries the overlay module when the kernel has its file', async () => {
    assert.match(await modulesIn(modulesDir('with', () => true)), /overlay\.ko/);
  });

  it('goes without an optional module that modules.dep names but the directory does not carry (a bundle of the guest modules only)', async () => {
    const listed = await modulesIn(modulesDir('without', (f) => !f.includes('overlay')));
    assert.doesNotMatch(listed, /overlay\.ko/);
    assert.match(listed, /virtio_blk\.ko/);
  });
});
