import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BangerError } from '../../src/protocol/errors.ts';
import { hostDefaults, loadConfig } from '../../src/system/config.ts';
import { fails } from '../fakes/expect-error.ts';

const GiB = 1024 ** 3;

describe('hostDefaults', () => {
  it('takes a quarter of the cores, at least 1 and at most 4', () => {
    assert.equal(hostDefaults(1, 16 * GiB).vcpus, 1);
    assert.equal(hostDefaults(3, 16 * GiB).vcpus, 1);
    assert.equal(hostDefaults(8, 16 * GiB).vcpus, 2);
    assert.equal(hostDefaults(12, 16 * GiB).vcpus, 3);
    assert.equal(hostDefaults(16, 16 * GiB).vcpus, 4);
    assert.equal(hostDefaults(128, 16 * GiB).vcpus, 4);
  });

  it('takes an eighth of the memory in 256 MiB steps, at least 512 MiB and at most 8 GiB', () => {
    assert.equal(hostDefaults(4, 16 * GiB).memoryMib, 2048);
    assert.equal(hostDefaults(4, 12 * GiB).memoryMib, 1536);
    assert.equal(hostDefaults(4, 10 * GiB).memoryMib, 1280);
    assert.equal(hostDefaults(4, 2 * GiB).memoryMib, 512);
    assert.equal(hostDefaults(4, 64 * GiB).memoryMib, 8192);
    assert.equal(hostDefaults(4, 512 * GiB).memoryMib, 8192);
  });

  it('defaults the disk and image', () => {
    assert.deepEqual(hostDefaults(4, 16 * GiB), { vcpus: 1, memoryMib: 2048, diskGib: 8, image: 'debian-bookworm' });
  });
});

describe('loadConfig', () => {
  let dir: string;
  let n = 0;
  const write = (text: string): string => {
    const file = path.join(dir, `config-${n++}.toml`);
    fs.writeFileSync(file, text);
    return file;
  };
  const invalid = (pattern: RegExp, options: { hint?: boolean } = { hint: true }) => fails('INVALID_ARGUMENT', pattern, options);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'banger-config-'));
  });
  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('uses the defaults when the file does not exist', () => {
    const config = loadConfig(path.join(dir, 'missing.toml'), {});
    assert.deepEqual(config.network, { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null });
    assert.deepEqual(config.vmm, { qemu: 'qemu-system-x86_64', accel: 'auto', sshTimeoutSec: 180, driver: 'auto', firecrackerBin: 'firecracker', jailerBin: 'jailer' });
    assert.equal(config.image.debianMirror, 'http://deb.debian.org/debian');
    assert.deepEqual(config.vmDefaults, hostDefaults());
    assert.deepEqual(config.dns, { port: 42069 });
  });

  it('takes [dns] port 0 as no .vm DNS server, and refuses what is not a port', () => {
    assert.equal(loadConfig(write('[dns]\nport = 0\n'), {}).dns.port, 0);
    assert.equal(loadConfig(write('[dns]\nport = 65535\n'), {}).dns.port, 65535);
    for (const port of ['-1', '65536']) {
      assert.throws(() => loadConfig(write(`[dns]\nport = ${port}\n`), {}), (err: unknown) => {
        invalid(new RegExp(`dns\\.port = ${port} is not a port`))(err);
        assert.match((err as BangerError).hint!, /0 to turn the \.vm DNS server off/);
        return true;
      });
    }
    assert.throws(() => loadConfig(write('[dns]\nport = "53"\n'), {}), invalid(/dns\.port must be a whole number/));
    assert.throws(() => loadConfig(write('[dns]\nport = 53.5\n'), {}), invalid(/dns\.port must be a whole number/));
    assert.throws(() => loadConfig(write('[dns]\nhost = "0.0.0.0"\n'), {}), (err: unknown) => {
      invalid(/unknown key dns\.host/)(err);
      assert.match((err as BangerError).hint!, /known keys in \[dns\]: port/);
      return true;
    });
  });

  it('applies every known key from valid TOML', () => {
    const file = write(`
[vm_defaults]
vcpus = 3
memory_mib = 3072
disk_gib = 20
image = "my-image"

[network]
bridge = "br-test"
subnet = "10.9.8.0/24"
netns = "sandbox"

[vmm]
qemu = "/opt/qemu/bin/qemu-system-x86_64"
accel = "tcg"
ssh_timeout_sec = 30
driver = "qemu"
firecracker_bin = "/opt/fc/firecracker"
jailer_bin = "/opt/fc/jailer"

[image]
debian_mirror = "https://mirror.example/debian"
insecure_registries = ["registry.lan:5000", "10.0.0.9"]
catalog = "https://bundles.example/catalog.json"

[dns]
port = 5353
`);
    assert.deepEqual(loadConfig(file, {}), {
      vmDefaults: { vcpus: 3, memoryMib: 3072, diskGib: 20, image: 'my-image' },
      network: { bridge: 'br-test', subnet: '10.9.8.0/24', netns: 'sandbox' },
      vmm: { qemu: '/opt/qemu/bin/qemu-system-x86_64', accel: 'tcg', sshTimeoutSec: 30, driver: 'qemu', firecrackerBin: '/opt/fc/firecracker', jailerBin: '/opt/fc/jailer' },
      image: { debianMirror: 'https://mirror.example/debian', insecureRegistries: ['registry.lan:5000', '10.0.0.9'], catalog: 'https://bundles.example/catalog.json' },
      dns: { port: 5353 },
      fileSync: [],
    });
  });

  it('refuses a catalog that is neither an absolute path nor a URL', () => {
    assert.throws(() => loadConfig(write('[image]\ncatalog = "catalog.json"\n'), {}), invalid(/image\.catalog = "catalog\.json"/));
  });

  it('refuses an insecure registry that is not host[:port]', () => {
    assert.throws(() => loadConfig(write('[image]\ninsecure_registries = ["http://registry.lan"]\n'), {}), invalid(/image\.insecure_registries entry "http:\/\/registry\.lan"/));
  });

  it('keeps defaults for keys the file leaves out', () => {
    const config = loadConfig(write('[vmm]\naccel = "kvm"\n'), {});
    assert.equal(config.vmm.accel, 'kvm');
    assert.equal(config.vmm.sshTimeoutSec, 180);
    assert.equal(config.network.bridge, 'banger0');
  });

  it('treats netns = "" as no namespace', () => {
    assert.equal(loadConfig(write('[network]\nnetns = ""\n'), {}).network.netns, null);
  });

  it('lets BANGER_NETNS override the file', () => {
    const file = write('[network]\nnetns = "fromfile"\n');
    assert.equal(loadConfig(file, { BANGER_NETNS: 'fromenv' }).network.netns, 'fromenv');
    assert.equal(loadConfig(path.join(dir, 'missing.toml'), { BANGER_NETNS: 'fromenv' }).network.netns, 'fromenv');
  });

  it('refuses a bad namespace from BANGER_NETNS too', () => {
    assert.throws(() => loadConfig(path.join(dir, 'missing.toml'), { BANGER_NETNS: 'bad name' }), invalid(/network namespace "bad name"/));
  });

  it('refuses TOML syntax errors', () => {
    assert.throws(() => loadConfig(write('[vmm\naccel = "tcg"\n'), {}), invalid(/config-\d+\.toml/));
  });

  it('refuses an unknown section, naming the known ones', () => {
    assert.throws(() => loadConfig(write('[vms]\nvcpus = 2\n'), {}), (err: unknown) => {
      invalid(/unknown section \[vms\]/)(err);
      assert.match((err as BangerError).hint!, /vm_defaults/);
      return true;
    });
  });

  it('refuses an unknown key, naming the known ones', () => {
    assert.throws(() => loadConfig(write('[vmm]\naccelerator = "tcg"\n'), {}), (err: unknown) => {
      invalid(/unknown key vmm\.accelerator/)(err);
      assert.match((err as BangerError).hint!, /accel/);
      return true;
    });
  });

  it('refuses a top-level key that is not a section', () => {
    assert.throws(() => loadConfig(write('accel = "tcg"\n'), {}), invalid(/unknown section \[accel\]/));
  });

  it('refuses wrong types', () => {
    assert.throws(() => loadConfig(write('[vm_defaults]\nvcpus = "2"\n'), {}), invalid(/vm_defaults\.vcpus must be a whole number/, {}));
    assert.throws(() => loadConfig(write('[vm_defaults]\nvcpus = 1.5\n'), {}), invalid(/vm_defaults\.vcpus must be a whole number/, {}));
    assert.throws(() => loadConfig(write('[network]\nbridge = 5\n'), {}), invalid(/network\.bridge must be a string/, {}));
  });

  it('gives a hint for wrong types like every other config error', () => {
    assert.throws(() => loadConfig(write('[vm_defaults]\nvcpus = "2"\n'), {}), invalid(/must be a whole number/));
  });

  it('refuses an accel other than auto, kvm or tcg', () => {
    assert.throws(() => loadConfig(write('[vmm]\naccel = "hvf"\n'), {}), invalid(/vmm\.accel = "hvf"/));
  });

  for (const subnet of ['10.0.0.0/16', '10.0.0.1/24', '256.0.0.0/24', '10.0.0/24', 'banana']) {
    it(`refuses subnet ${subnet}`, () => {
      assert.throws(() => loadConfig(write(`[network]\nsubnet = "${subnet}"\n`), {}), invalid(/network\.subnet/));
    });
  }

  for (const netns of ['-leading-dash', 'has space', 'semi;colon', 'a/b', 'x'.repeat(65)]) {
    it(`refuses netns ${JSON.stringify(netns.length > 20 ? `${netns.slice(0, 10)}…` : netns)}`, () => {
      assert.throws(() => loadConfig(write(`[network]\nnetns = "${netns}"\n`), {}), invalid(/network namespace/));
    });
  }

  it('refuses out-of-range numbers and a bad bridge name or mirror', () => {
    assert.throws(() => loadConfig(write('[vm_defaults]\nvcpus = 0\n'), {}), invalid(/vcpus = 0/));
    assert.throws(() => loadConfig(write('[vm_defaults]\nvcpus = 65\n'), {}), invalid(/vcpus = 65/));
    assert.throws(() => loadConfig(write('[vm_defaults]\nmemory_mib = 64\n'), {}), invalid(/memory_mib = 64/));
    assert.throws(() => loadConfig(write('[vm_defaults]\ndisk_gib = 0\n'), {}), invalid(/disk_gib = 0/));
    assert.throws(() => loadConfig(write('[vmm]\nssh_timeout_sec = 0\n'), {}), invalid(/ssh_timeout_sec/));
    assert.throws(() => loadConfig(write('[network]\nbridge = "this-name-is-too-long"\n'), {}), invalid(/network\.bridge/));
    assert.throws(() => loadConfig(write('[image]\ndebian_mirror = "ftp://x/debian"\n'), {}), invalid(/debian_mirror/));
    assert.throws(() => loadConfig(write('[vm_defaults]\nmemory_mib = 2097152\n'), {}), invalid(/memory_mib = 2097152 is too large/));
    assert.throws(() => loadConfig(write('[vmm]\nssh_timeout_sec = 3601\n'), {}), invalid(/ssh_timeout_sec = 3601 is too large/));
  });

  it('refuses an empty image or qemu', () => {
    assert.throws(() => loadConfig(write('[vm_defaults]\nimage = ""\n'), {}), invalid(/vm_defaults\.image must not be empty/));
    assert.throws(() => loadConfig(write('[vmm]\nqemu = ""\n'), {}), invalid(/vmm\.qemu must not be empty/));
  });

  it('refuses a known section written as a plain key', () => {
    assert.throws(() => loadConfig(write('vmm = 5\n'), {}), invalid(/\[vmm\] must be a section/));
  });

  it('refuses values TOML has but config.toml does not use, such as dates and lists', () => {
    assert.throws(() => loadConfig(write('[vm_defaults]\nimage = 1979-05-27\n'), {}), invalid(/vm_defaults\.image must be a string/));
    assert.throws(() => loadConfig(write('[vm_defaults]\nvcpus = [1, 2]\n'), {}), invalid(/vm_defaults\.vcpus must be a whole number/));
  });
});
