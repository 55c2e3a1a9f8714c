import fs from 'node:fs';
import os from 'node:os';
import { parse } from 'smol-toml';
import { z } from 'zod';
import { BangerError, messageOf } from '../protocol/errors.ts';
import { VM_LIMITS as L } from '../protocol/vm-limits.ts';
import { parseFileSyncEntry, type FileSyncEntry } from './file-sync-rules.ts';


/** A dotted IPv4 address. */
export const IPV4_PATTERN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
export const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/;
export const NETNS_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;
export const SUBNET_PATTERN = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.0\/24$/;
/** Where bangerd answers DNS queries for NAME.vm on 127.0.0.1 (UDP and TCP), unless [dns] port says otherwise. */
export const DEFAULT_DNS_PORT = 42069;

/** Host-derived defaults: about a quarter of the cores (max 4) and an eighth of the memory (max 8 GiB). */
export function hostDefaults(cpus = os.availableParallelism(), totalMem = os.totalmem()): BangerConfig['vmDefaults'] {
  const memoryMib = Math.min(8192, Math.max(512, Math.floor(totalMem / 8 / 1024 / 1024 / 256) * 256));
  return { vcpus: Math.min(4, Math.max(1, Math.floor(cpus / 4))), memoryMib, diskGib: 8, image: 'debian-bookworm' };
}

// config.toml as zod schemas: one per section, each key once, with its TOML name, type, range and default.
// A check that needs its own words gives them, and a hint, through `matching`.

/** A string `pattern` must match; `message` describes a bad value, `hint` says what to write instead. */
function matching(pattern: RegExp, message: (value: string) => string, hint: string) {
  return z.string().refine((v) => pattern.test(v), { error: (iss) => message(String(iss.input)), params: { hint } });
}

const ACCEL = z.enum(['auto', 'kvm', 'tcg']);
export type Accel = z.output<typeof ACCEL>;
const DRIVER = z.enum(['auto', 'firecracker', 'qemu']);
/** Which VMM runs new VMs: auto picks Firecracker where its binary is and KVM runs guests, else QEMU. */
export type VmmDriverChoice = z.output<typeof DRIVER>;
/** A program by name (looked up on PATH) or absolute path. */
const PROGRAM = /^[a-zA-Z0-9_./-]{1,200}$/;

/** A namespace name; "" means none (null). Shared by network.netns and BANGER_NETNS. */
const NETNS = z.string()
  .transform((v) => (v === '' ? null : v))
  .refine((v) => v === null || NETNS_PATTERN.test(v), {
    error: (iss) => `network namespace ${JSON.stringify(iss.input)} is not a valid name`,
    params: { hint: 'use letters, digits, "-", "_" or "." (at most 64), or "" for none' },
  });

const SECTIONS = {
  vm_defaults: z.strictObject({
    vcpus: z.int().min(L.vcpus.min).max(L.vcpus.max).default(() => hostDefaults().vcpus),
    memory_mib: z.int().min(L.memoryMib.min).max(L.memoryMib.max).default(() => hostDefaults().memoryMib),
    disk_gib: z.int().min(L.diskGib.min).max(L.diskGib.max).default(() => hostDefaults().diskGib),
    image: z.string().min(1).default(() => hostDefaults().image),
  }),
  network: z.strictObject({
    bridge: matching(NAME_PATTERN, (v) => `network.bridge = ${JSON.stringify(v)} is not a valid interface name`, 'use up to 15 letters, digits, "-", "_" or "."').default('banger0'),
    subnet: matching(SUBNET_PATTERN, (v) => `network.subnet = ${JSON.stringify(v)}`, 'use an IPv4 /24 such as "172.30.0.0/24"').default('172.30.0.0/24'),
    netns: NETNS.default(null),
  }),
  vmm: z.strictObject({
    qemu: z.string().min(1).default('qemu-system-x86_64'),
    accel: ACCEL.default('auto'),
    ssh_timeout_sec: z.int().min(L.sshTimeoutSec.min).max(L.sshTimeoutSec.max).default(180),
    driver: DRIVER.default('auto'),
    firecracker_bin: matching(PROGRAM, (v) => `vmm.firecracker_bin = ${JSON.stringify(v)} is not a program name or path`, 'give a name on PATH or an absolute path, e.g. "/usr/local/bin/firecracker"').default('firecracker'),
    /** "" runs Firecracker without the jailer (development hosts). */
    jailer_bin: z.string().refine((v) => v === '' || PROGRAM.test(v), {
      error: (iss) => `vmm.jailer_bin = ${JSON.stringify(iss.input)} is not a program name or path`,
      params: { hint: 'give a name on PATH or an absolute path, e.g. "/usr/local/bin/jailer", or "" to run Firecracker without the jailer' },
    }).default('jailer'),
  }),
  image: z.strictObject({
    debian_mirror: matching(/^https?:\/\/[^\s'"]+$/, (v) => `image.debian_mirror = ${JSON.stringify(v)}`, 'use an http(s) URL of a Debian archive').default('http://deb.debian.org/debian'),
    /** Registries reached over plain http (loopback ones always are), as host[:port]. */
    /** The bundle catalog, by path or http(s)/file URL; the one banger ships when not set. */
    catalog: matching(/^(\/|https?:\/\/|file:\/\/)\S+$/, (v) => `image.catalog = ${JSON.stringify(v)}`, 'give an absolute path, or an http(s) or file URL').nullable().default(null),
    insecure_registries: z.array(matching(/^[a-zA-Z0-9.-]+(:\d{1,5})?$/, (v) => `image.insecure_registries entry ${JSON.stringify(v)}`, 'list registries as "host" or "host:port"')).default([]),
  }),
  dns: z.strictObject({
    port: z.int().refine((v) => v >= 0 && v <= 65_535, {
      error: (iss) => `dns.port = ${String(iss.input)} is not a port`,
      params: { hint: 'use a port from 1 to 65535, or 0 to turn the .vm DNS server off' },
    }).default(DEFAULT_DNS_PORT),
  }),
};

/** [[file_sync]]: a list of entries, each checked by parseFileSyncEntry, whose messages name the entry. */
const FILE_SYNC = z.array(z.unknown()).transform((entries, ctx) => {
  const out: FileSyncEntry[] = [];
  entries.forEach((raw, i) => {
    const checked = parseFileSyncEntry(raw, i);
    if ('entry' in checked) out.push(checked.entry);
    else ctx.addIssue({ code: 'custom', message: checked.message, params: { hint: checked.hint }, path: [i] });
  });
  return out;
});

/** The whole file: each section may be left out (prefault parses {} so its keys get their defaults). */
const CONFIG = z.strictObject({
  vm_defaults: SECTIONS.vm_defaults.prefault({}),
  network: SECTIONS.network.prefault({}),
  vmm: SECTIONS.vmm.prefault({}),
  image: SECTIONS.image.prefault({}),
  dns: SECTIONS.dns.prefault({}),
  file_sync: FILE_SYNC.prefault([]),
}).transform((c) => ({
  vmDefaults: { vcpus: c.vm_defaults.vcpus, memoryMib: c.vm_defaults.memory_mib, diskGib: c.vm_defaults.disk_gib, image: c.vm_defaults.image },
  network: { bridge: c.network.bridge, subnet: c.network.subnet, netns: c.network.netns },
  vmm: {
    qemu: c.vmm.qemu, accel: c.vmm.accel, sshTimeoutSec: c.vmm.ssh_timeout_sec,
    driver: c.vmm.driver, firecrackerBin: c.vmm.firecracker_bin, jailerBin: c.vmm.jailer_bin === '' ? null : c.vmm.jailer_bin,
  },
  image: { debianMirror: c.image.debian_mirror, insecureRegistries: c.image.insecure_registries, catalog: c.image.catalog },
  /** port 0: no .vm DNS server. */
  dns: { port: c.dns.port },
  fileSync: c.file_sync,
}));

export type BangerConfig = z.output<typeof CONFIG>;

/** Read config.toml (missing file = defaults) and apply BANGER_NETNS. Unknown keys and bad values are errors. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): BangerConfig {
  const config = check(CONFIG, readConfigDoc(file), file);
  if (env.BANGER_NETNS) config.network.netns = check(NETNS, env.BANGER_NETNS, file);
  return config;
}

/** config.toml parsed but not checked: {} when the file does not exist. */
function readConfigDoc(file: string): unknown {
  let text: string | null = null;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let doc: unknown = {};
  if (text !== null) {
    try {
      doc = parse(text);
    } catch (err) {
      throw new BangerError('INVALID_ARGUMENT', `${file}: ${messageOf(err)}`, { hint: 'fix the TOML syntax in that file' });
    }
  }
  return doc;
}

function check<S extends z.ZodType>(schema: S, value: unknown, file: string): z.output<S> {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  // The first problem, as the file's author would fix them one at a time.
  const { message, hint } = describeIssue(result.error.issues[0]!);
  throw new BangerError('INVALID_ARGUMENT', `${file}: ${message}`, { hint });
}

function describeIssue(issue: z.core.$ZodIssue): { message: string; hint: string } {
  const [section, key] = issue.path.map(String);
  if (section === 'file_sync' && issue.code !== 'custom') {
    return { message: 'file_sync must be a list of [[file_sync]] entries', hint: 'write each entry as [[file_sync]] (double brackets) with host = "~/..." and guest = "~/..." below it' };
  }
  const name = `${section}.${key}`;
  switch (issue.code) {
    case 'unrecognized_keys': {
      if (section === undefined) {
        return { message: `unknown section ${issue.keys.map((k) => `[${k}]`).join(', ')}`, hint: `known sections: ${[...Object.keys(SECTIONS), 'file_sync'].join(', ')}` };
      }
      const known = Object.keys(SECTIONS[section as keyof typeof SECTIONS].shape);
      return { message: `unknown key ${issue.keys.map((k) => `${section}.${k}`).join(', ')}`, hint: `known keys in [${section}]: ${known.join(', ')}` };
    }
    case 'invalid_type':
      if (key === undefined) return { message: `[${section}] must be a section`, hint: `write [${section}] on a line of its own, with its keys below it` };
      if (issue.expected === 'string') return { message: `${name} must be a string`, hint: `write it in quotes: ${key} = "..."` };
      return { message: `${name} must be a whole number`, hint: `write it as a number without quotes: ${key} = 4` };
    case 'too_small':
      if (issue.origin === 'string') return { message: `${name} must not be empty`, hint: `give it a value, or remove the line to get the default` };
      return { message: `${name} = ${String(issue.input)} is too small`, hint: `use at least ${String(issue.minimum)}` };
    case 'too_big':
      return { message: `${name} = ${String(issue.input)} is too large`, hint: `use at most ${String(issue.maximum)}` };
    case 'invalid_value':
      return { message: `${name} = ${JSON.stringify(issue.input)}`, hint: `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}` };
    case 'custom':
      return { message: issue.message, hint: String((issue.params as { hint?: unknown } | undefined)?.hint ?? `fix ${name}`) };
    default:
      return { message: `${name}: ${issue.message}`, hint: `fix ${name}` };
  }
}

/** The bridge's address in a /24 subnet: the first host, e.g. 172.30.0.1/24. */
export function gatewayCidrOf(subnet: string): string {
  return `${subnet.split('/')[0]!.split('.').slice(0, 3).join('.')}.1/24`;
}

/** Where a default a new VM gets comes from: config.toml, the host's size, or banger itself. */
export interface DefaultWithSource<T> {
  value: T;
  from: 'config' | 'host' | 'built-in';
  /** For people: "config.toml [vm_defaults] vcpus", "host: 8 CPUs / 4, from 1 to 4". */
  why: string;
}

export interface VmDefaultsWithSources {
  vcpus: DefaultWithSource<number>;
  memoryMib: DefaultWithSource<number>;
  diskGib: DefaultWithSource<number>;
  image: DefaultWithSource<string>;
}

/** What a VM created without size flags gets, and why; the same rules as loadConfig (whose errors it throws). */
export function vmDefaultsWithSources(file: string, host: { cpus: number; totalMem: number } = { cpus: os.availableParallelism(), totalMem: os.totalmem() }): VmDefaultsWithSources {
  const doc = readConfigDoc(file);
  const config = check(CONFIG, doc, file);
  const written = (doc as { vm_defaults?: Record<string, unknown> }).vm_defaults ?? {};
  const derived = hostDefaults(host.cpus, host.totalMem);
  const gib = (bytes: number): string => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  // A key left out gets the host-derived value (for this `host`), as loadConfig gives it for the real one.
  const pick = <T>(key: string, configured: T, otherwise: DefaultWithSource<T>): DefaultWithSource<T> =>
    Object.hasOwn(written, key) ? { value: configured, from: 'config', why: `${file} [vm_defaults] ${key}` } : otherwise;
  const d = config.vmDefaults;
  return {
    vcpus: pick('vcpus', d.vcpus, { value: derived.vcpus, from: 'host', why: `host: ${host.cpus} CPUs / 4, from 1 to 4` }),
    memoryMib: pick('memory_mib', d.memoryMib, { value: derived.memoryMib, from: 'host', why: `host: ${gib(host.totalMem)} RAM / 8, from 512 MiB to 8 GiB` }),
    diskGib: pick('disk_gib', d.diskGib, { value: derived.diskGib, from: 'built-in', why: "banger's default" }),
    image: pick('image', d.image, { value: derived.image, from: 'built-in', why: "banger's default image" }),
  };
}
