// What `vm create --help` and `vm run --help` say a new VM gets, and where each value comes from.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { defaultsHelp } from '../../src/cli/defaults-help.ts';
import { main } from '../../src/cli/program.ts';
import { vmDefaultsWithSources } from '../../src/system/config.ts';

const GiB = 1024 ** 3;
let dir: string;
let file: string;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-defaults-'));
  file = path.join(dir, 'config.toml');
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('vmDefaultsWithSources', () => {
  it('derives what config.toml leaves out from the host: cpus / 4 (1 to 4), memory / 8 (512 MiB to 8 GiB)', () => {
    const d = vmDefaultsWithSources(file, { cpus: 8, totalMem: 16 * GiB });
    assert.deepEqual([d.vcpus.value, d.vcpus.from, d.vcpus.why], [2, 'host', 'host: 8 CPUs / 4, from 1 to 4']);
    assert.deepEqual([d.memoryMib.value, d.memoryMib.from], [2048, 'host']);
    assert.deepEqual([d.diskGib.value, d.diskGib.from], [8, 'built-in']);
    assert.deepEqual([d.image.value, d.image.from], ['debian-bookworm', 'built-in']);
    const small = vmDefaultsWithSources(file, { cpus: 2, totalMem: 2 * GiB });
    assert.deepEqual([small.vcpus.value, small.memoryMib.value], [1, 512]);
    const big = vmDefaultsWithSources(file, { cpus: 64, totalMem: 256 * GiB });
    assert.deepEqual([big.vcpus.value, big.memoryMib.value], [4, 8192]);
  });

  it('names config.toml for the keys it sets', () => {
    fs.writeFileSync(file, '[vm_defaults]\nvcpus = 3\ndisk_gib = 20\n');
    const d = vmDefaultsWithSources(file, { cpus: 8, totalMem: 16 * GiB });
    assert.deepEqual([d.vcpus.value, d.vcpus.from, d.vcpus.why], [3, 'config', `${file} [vm_defaults] vcpus`]);
    assert.deepEqual([d.diskGib.value, d.diskGib.from], [20, 'config']);
    assert.equal(d.memoryMib.from, 'host');
  });

  it('throws what loadConfig throws for a bad config.toml', () => {
    fs.writeFileSync(file, '[vm_defaults]\nvcpus = 0\n');
    assert.throws(() => vmDefaultsWithSources(file), /vm_defaults\.vcpus = 0 is too small/);
  });
});

describe('the defaults in vm create --help and vm run --help', () => {
  it('lists each flag with its value and where it comes from', () => {
    fs.writeFileSync(file, '[vm_defaults]\nmemory_mib = 4096\n');
    const text = defaultsHelp(file, (f) => vmDefaultsWithSources(f, { cpus: 8, totalMem: 16 * GiB }));
    assert.match(text, /^ {2}--cpus +2 +host: 8 CPUs \/ 4, from 1 to 4$/m);
    assert.match(text, new RegExp(`^ {2}--memory +4096 MiB +${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\[vm_defaults\\] memory_mib$`, 'm'));
    assert.match(text, /^ {2}--disk +8 GiB +banger's default$/m);
  });

  it('says so when config.toml does not load, instead of failing the help', () => {
    fs.writeFileSync(file, 'not toml [');
    assert.match(defaultsHelp(file), /does not load/);
  });

  for (const command of ['create', 'run']) {
    it(`vm ${command} --help ends with them; other help has no such section`, async () => {
      fs.writeFileSync(file, '[vm_defaults]\nvcpus = 3\n');
      const out: string[] = [];
      const deps = { output: { out: (t: string) => out.push(t), err: () => undefined }, connect: async () => assert.fail('no daemon'), exit: () => undefined, configFile: file };
      assert.equal(await main(['vm', command, '--help'], deps), 0);
      assert.match(out.join(''), /--cpus +3 +.*\[vm_defaults\] vcpus/);
      out.length = 0;
      assert.equal(await main(['vm', 'list', '--help'], deps), 0);
      assert.doesNotMatch(out.join(''), /Defaults/);
    });
  }
});
