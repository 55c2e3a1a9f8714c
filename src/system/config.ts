import fs from 'node:fs';
import os from 'node:os';
import { parse } from 'smol-toml';
import { BangerError, messageOf } from '../protocol/errors.ts';

export type Accel = 'auto' | 'kvm' | 'tcg';

export interface BangerConfig {
  vmDefaults: { vcpus: number; memoryMib: number; diskGib: number; image: string };
  network: { bridge: string; subnet: string; netns: string | null };
  vmm: { qemu: string; accel: Accel; sshTimeoutSec: number };
  image: { debianMirror: string };
}

/** Host-derived defaults: about a quarter of the cores (max 4) and an eighth of the memory (max 8 GiB). */
export function hostDefaults(cpus = os.availableParallelism(), totalMem = os.totalmem()): BangerConfig['vmDefaults'] {
  const memoryMib = Math.min(8192, Math.max(512, Math.floor(totalMem / 8 / 1024 / 1024 / 256) * 256));
  return { vcpus: Math.min(4, Math.max(1, Math.floor(cpus / 4))), memoryMib, diskGib: 8, image: 'debian-bookworm' };
}

function defaults(): BangerConfig {
  return {
    vmDefaults: hostDefaults(),
    network: { bridge: 'banger0', subnet: '172.30.0.0/24', netns: null },
    vmm: { qemu: 'qemu-system-x86_64', accel: 'auto', sshTimeoutSec: 180 },
    image: { debianMirror: 'http://deb.debian.org/debian' },
  };
}

type Schema = Record<string, Record<string, 'string' | 'integer'>>;
const SCHEMA: Schema = {
  vm_defaults: { vcpus: 'integer', memory_mib: 'integer', disk_gib: 'integer', image: 'string' },
  network: { bridge: 'string', subnet: 'string', netns: 'string' },
  vmm: { qemu: 'string', accel: 'string', ssh_timeout_sec: 'integer' },
  image: { debian_mirror: 'string' },
};

/** Read config.toml (missing file = defaults) and apply BANGER_NETNS. Unknown keys and bad values are errors. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): BangerConfig {
  const config = defaults();
  let text: string | null = null;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== null) applyToml(config, file, text);
  if (env.BANGER_NETNS) config.network.netns = env.BANGER_NETNS;
  validate(config, file);
  return config;
}

function applyToml(config: BangerConfig, file: string, text: string): void {
  let doc: Record<string, unknown>;
  try {
    doc = parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new BangerError('INVALID_ARGUMENT', `${file}: ${messageOf(err)}`, { hint: 'fix the TOML syntax in that file' });
  }
  for (const [section, values] of Object.entries(doc)) {
    const keys = SCHEMA[section];
    if (!keys || typeof values !== 'object' || values === null) {
      throw new BangerError('INVALID_ARGUMENT', `${file}: unknown section [${section}]`, { hint: `known sections: ${Object.keys(SCHEMA).join(', ')}` });
    }
    for (const [key, value] of Object.entries(values)) {
      const type = keys[key];
      if (!type) throw new BangerError('INVALID_ARGUMENT', `${file}: unknown key ${section}.${key}`, { hint: `known keys in [${section}]: ${Object.keys(keys).join(', ')}` });
      const ok = type === 'string' ? typeof value === 'string' : typeof value === 'bigint' || Number.isInteger(value);
      if (!ok) {
        throw new BangerError('INVALID_ARGUMENT', `${file}: ${section}.${key} must be ${type === 'string' ? 'a string' : 'a whole number'}`, {
          hint: type === 'string' ? `write it in quotes: ${key} = "..."` : `write it as a number without quotes: ${key} = 4`,
        });
      }
      setValue(config, section, key, typeof value === 'bigint' ? Number(value) : value);
    }
  }
}

function setValue(config: BangerConfig, section: string, key: string, value: unknown): void {
  const v = value as never;
  switch (`${section}.${key}`) {
    case 'vm_defaults.vcpus': config.vmDefaults.vcpus = v; break;
    case 'vm_defaults.memory_mib': config.vmDefaults.memoryMib = v; break;
    case 'vm_defaults.disk_gib': config.vmDefaults.diskGib = v; break;
    case 'vm_defaults.image': config.vmDefaults.image = v; break;
    case 'network.bridge': config.network.bridge = v; break;
    case 'network.subnet': config.network.subnet = v; break;
    case 'network.netns': config.network.netns = (value as string) === '' ? null : v; break;
    case 'vmm.qemu': config.vmm.qemu = v; break;
    case 'vmm.accel': config.vmm.accel = v; break;
    case 'vmm.ssh_timeout_sec': config.vmm.sshTimeoutSec = v; break;
    case 'image.debian_mirror': config.image.debianMirror = v; break;
  }
}

export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/;
export const NETNS_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
export const SUBNET_PATTERN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.0\/24$/;

/** The bridge's address in a /24 subnet: the first host, e.g. 172.30.0.1/24. */
export function gatewayCidrOf(subnet: string): string {
  return `${subnet.split('/')[0]!.split('.').slice(0, 3).join('.')}.1/24`;
}

function validate(config: BangerConfig, file: string): void {
  const bad = (what: string, hint: string): never => {
    throw new BangerError('INVALID_ARGUMENT', `${file}: ${what}`, { hint });
  };
  const d = config.vmDefaults;
  if (d.vcpus < 1 || d.vcpus > 64) bad(`vm_defaults.vcpus = ${d.vcpus} is out of range`, 'use 1 to 64');
  if (d.memoryMib < 128) bad(`vm_defaults.memory_mib = ${d.memoryMib} is too small`, 'use at least 128');
  if (d.diskGib < 1) bad(`vm_defaults.disk_gib = ${d.diskGib} is too small`, 'use at least 1');
  if (!['auto', 'kvm', 'tcg'].includes(config.vmm.accel)) bad(`vmm.accel = "${config.vmm.accel}"`, 'use "auto", "kvm" or "tcg"');
  if (config.vmm.sshTimeoutSec < 1) bad('vmm.ssh_timeout_sec must be at least 1', 'use a number of seconds');
  if (!NAME_PATTERN.test(config.network.bridge)) bad(`network.bridge = "${config.network.bridge}" is not a valid interface name`, 'use up to 15 letters, digits, "-", "_" or "."');
  if (config.network.netns !== null && !NETNS_PATTERN.test(config.network.netns)) {
    bad(`network namespace "${config.network.netns}" is not a valid name`, 'use letters, digits, "-", "_" or "."');
  }
  if (!SUBNET_PATTERN.test(config.network.subnet)) bad(`network.subnet = "${config.network.subnet}"`, 'use an IPv4 /24 such as "172.30.0.0/24"');
  if (!/^https?:\/\/[^\s'"]+$/.test(config.image.debianMirror)) bad(`image.debian_mirror = "${config.image.debianMirror}"`, 'use an http(s) URL of a Debian archive');
}
