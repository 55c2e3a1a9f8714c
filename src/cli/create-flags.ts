// The flags that describe a new VM, shared by vm create and vm run, turned into the daemon's create params.
import type { VmCreateParams } from '../protocol/methods.ts';
import { sizeParams, wholeNumber, type SizeFlags } from './size-flags.ts';

export interface CreateFlags extends SizeFlags {
  name?: string;
  image?: string;
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
  Object.assign(params, sizeParams(flags));
  const timeout = wholeNumber(flags.sshTimeout, '--ssh-timeout');
  if (timeout !== undefined) params.sshTimeoutSec = timeout;
  if (flags.freshAccel) params.freshAccel = true;
  if (flags.nat) params.nat = true;
  return params;
}
