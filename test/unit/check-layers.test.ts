import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { checkLayers, layerOf } from '../../scripts/check-layers.ts';

function tree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-layers-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

describe('check-layers', () => {
  test('the real source tree has no wrong-way import', () => {
    assert.deepEqual(checkLayers(path.resolve(import.meta.dirname, '../../src')), []);
  });

  test('a wrong-way import is refused, whether static, type-only or dynamic', () => {
    const dir = tree({
      'protocol/errors.ts': 'export const x = 1;\n',
      'helper/main.ts': "import { QemuDriver } from '../vmm/qemu/qemu-driver.ts';\n",
      'vmm/qemu/qemu-driver.ts': "import type { H } from '../../helper/helper-service.ts';\nexport class QemuDriver {}\n",
      'sdk/client.ts': "const m = await import('../daemon/daemon.ts');\nimport { x } from '../protocol/errors.ts';\n",
      'daemon/daemon.ts': "import { VmService } from './services/vm-service.ts';\n",
      'daemon/services/vm-service.ts': "import { Daemon } from '../daemon.ts';\n",
    });
    try {
      const found = checkLayers(dir).map((v) => `${v.file} -> ${v.imported}`).sort();
      assert.deepEqual(found, [
        'daemon/services/vm-service.ts -> ../daemon.ts',
        'helper/main.ts -> ../vmm/qemu/qemu-driver.ts',
        'sdk/client.ts -> ../daemon/daemon.ts',
        'vmm/qemu/qemu-driver.ts -> ../../helper/helper-service.ts',
      ]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a file outside every layer is reported', () => {
    const dir = tree({ 'web/page.ts': 'export {};\n' });
    try {
      assert.match(checkLayers(dir)[0]!.message, /in no layer/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('services are their own layer below the daemon', () => {
    assert.equal(layerOf('daemon/services/vm-service.ts'), 'daemon/services');
    assert.equal(layerOf('daemon/daemon.ts'), 'daemon');
    assert.equal(layerOf('daemonic/x.ts'), null);
  });
});
