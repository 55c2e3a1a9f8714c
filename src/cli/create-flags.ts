// The flags that describe a new VM, shared by vm create and vm run, turned into the daemon's create params.
import type { VmCreateParams } from '../protocol/methods.ts';
import { diskGib, memoryMib, wholeNumber } from './size-flags.ts';

export interface CreateFlags {
  name?: string;
  image?: string;
  cpus?: string;
  memory?: string;
  disk?: string;
  sshTimeout?: string;
  freshAccel?: boolean;
  nat?: boolean;
  json?: boolean;
}

/** Only the flags given; the daemon fills in the rest from the config. */
export function createParams(flags: CreateFlags): VmCreateParams {
  const params: VmCreateParams = {};
  if (flags.name !== undefined) params.name = flags.name;
  if (flags.image !== undefined) params.image = flags.image;
  const vcpus = wholeNumber(flags.cpus, '--cpus');
  if (vcpus !== undefined) params.vcpus = vcpus;
  const mem = memoryMib(flags.memory);
  if (mem !== undefined) params.memoryMib = mem;
  const disk = diskGib(flags.disk);
  if (disk !== undefined) params.diskGib = disk;
  const timeout = wholeNumber(flags.sshTimeout, '--ssh-timeout');
  if (timeout !== undefined) params.sshTimeoutSec = timeout;
  if (flags.freshAccel) params.freshAccel = true;
  if (flags.nat) params.nat = true;
  return params;
}
