// Parsing of the number and size flags that VM commands share (--cpus, --memory, --disk, --ssh-timeout).
import { BangerError } from '../protocol/errors.ts';

/** A whole number given as `flag`, or undefined when the flag was not given. */
export function wholeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) {
    throw new BangerError('INVALID_ARGUMENT', `${flag} must be a whole number (got ${JSON.stringify(value)})`, { hint: `give ${flag} as digits only, e.g. ${flag} 2` });
  }
  return Number(value);
}

/** Memory as MiB, accepting "2048", "2048M", "2G". */
export function memoryMib(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\s*(?:([mMgG])(?:i?[bB])?)?$/.exec(value);
  if (!m) throw new BangerError('INVALID_ARGUMENT', `--memory must be like 2048, 2048M or 2G (got ${JSON.stringify(value)})`, { hint: 'give MiB or GiB, e.g. --memory 2G' });
  return Number(m[1]) * (m[2] && /g/i.test(m[2]) ? 1024 : 1);
}

/** Disk as GiB, accepting "8" or "8G". */
export function diskGib(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)\s*(?:[gG]i?[bB]?)?$/.exec(value);
  if (!m) throw new BangerError('INVALID_ARGUMENT', `--disk must be a size in GiB like 8 or 8G (got ${JSON.stringify(value)})`, { hint: 'give whole GiB, e.g. --disk 16G' });
  return Number(m[1]);
}

export interface SizeFlags {
  cpus?: string;
  memory?: string;
  disk?: string;
}

/** --cpus, --memory and --disk parsed, in that order; a flag not given is left out. */
export function sizeParams(flags: SizeFlags): { vcpus?: number; memoryMib?: number; diskGib?: number } {
  const size: { vcpus?: number; memoryMib?: number; diskGib?: number } = {};
  const vcpus = wholeNumber(flags.cpus, '--cpus');
  if (vcpus !== undefined) size.vcpus = vcpus;
  const mem = memoryMib(flags.memory);
  if (mem !== undefined) size.memoryMib = mem;
  const disk = diskGib(flags.disk);
  if (disk !== undefined) size.diskGib = disk;
  return size;
}
