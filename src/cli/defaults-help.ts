// The end of `vm create --help` and `vm run --help`: what a VM gets without --cpus, --memory, --disk and --image,
// and where each value comes from. Loaded only for that help, since it reads and checks config.toml.
import { messageOf } from '../protocol/errors.ts';
import { vmDefaultsWithSources, type VmDefaultsWithSources } from '../system/config.ts';

/** The help section for `configFile` on this host; a config.toml that does not load is said, not thrown. */
export function defaultsHelp(configFile: string, read: (file: string) => VmDefaultsWithSources = vmDefaultsWithSources): string {
  let d: VmDefaultsWithSources;
  try {
    d = read(configFile);
  } catch (err) {
    return `\nDefaults: ${configFile} does not load (${messageOf(err)}); bangerd refuses to start with it.\n`;
  }
  const rows: Array<[string, string, string]> = [
    ['--cpus', String(d.vcpus.value), d.vcpus.why],
    ['--memory', `${d.memoryMib.value} MiB`, d.memoryMib.why],
    ['--disk', `${d.diskGib.value} GiB`, d.diskGib.why],
    ['--image', d.image.value, d.image.why],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return [
    '',
    'Defaults (what a VM gets without the flag, and where it comes from):',
    ...rows.map(([flag, value, why]) => `  ${flag.padEnd(w0)}  ${value.padEnd(w1)}  ${why}`),
    'Set them in [vm_defaults] of config.toml; bangerd reads it when it starts (after editing: banger daemon stop).',
    '',
  ].join('\n');
}
