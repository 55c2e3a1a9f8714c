// banger vm forward VM [HOST_PORT:]GUEST_PORT: serve a guest TCP port on a host loopback port while the VM
// runs; --remove HOST_PORT stops it. Also parses `vm run -p`.
import { BangerError } from '../../protocol/errors.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

export interface ForwardSpec {
  hostPort?: number;
  guestPort: number;
}

/** `8080` (a free host port) or `9000:8080` (host 9000 to guest 8080). */
export function parseForwardSpec(text: string): ForwardSpec {
  const m = /^(?:(\d{1,5}):)?(\d{1,5})$/.exec(text.trim());
  const port = (s: string | undefined): number | undefined => (s === undefined ? undefined : Number(s));
  const host = port(m?.[1]);
  const guest = port(m?.[2]);
  const valid = (p: number | undefined): boolean => p === undefined || (p >= 1 && p <= 65535);
  if (!m || guest === undefined || !valid(host) || !valid(guest)) {
    throw new BangerError('INVALID_ARGUMENT', `${JSON.stringify(text)} is not a forward: expected GUEST_PORT or HOST_PORT:GUEST_PORT (ports 1-65535)`, {
      hint: 'for example: -p 8080 (a free host port) or -p 9000:8080 (host 127.0.0.1:9000 to guest port 8080)',
    });
  }
  return host === undefined ? { guestPort: guest } : { hostPort: host, guestPort: guest };
}

export async function vmForward(ctx: CliContext, ref: string, spec: string | undefined, flags: { remove?: string; json?: boolean }): Promise<number> {
  const client = await ctx.client();
  if (flags.remove !== undefined) {
    if (spec !== undefined) throw new BangerError('INVALID_ARGUMENT', 'give either a port to forward or --remove HOST_PORT, not both', { hint: `banger vm forward ${ref} --remove HOST_PORT` });
    const hostPort = Number(flags.remove);
    if (!Number.isInteger(hostPort) || hostPort < 1 || hostPort > 65535) {
      throw new BangerError('INVALID_ARGUMENT', `--remove takes a host port (1-65535), got ${JSON.stringify(flags.remove)}`, { hint: `see the forwards: banger vm ports ${ref}` });
    }
    const removed = await client.unforwardPort(ref, hostPort);
    if (flags.json) printJson(ctx.output, removed);
    else ctx.output.out(`stopped forwarding 127.0.0.1:${removed.hostPort}`);
    return 0;
  }
  if (spec === undefined) throw new BangerError('INVALID_ARGUMENT', 'vm forward needs [HOST_PORT:]GUEST_PORT', { hint: `for example: banger vm forward ${ref} 8080` });
  const { hostPort, guestPort } = parseForwardSpec(spec);
  const forward = await client.forwardPort(ref, guestPort, hostPort);
  if (flags.json) printJson(ctx.output, forward);
  else ctx.output.out(`127.0.0.1:${forward.hostPort} -> guest port ${forward.guestPort} (while the VM runs; stop it: banger vm forward ${ref} --remove ${forward.hostPort})`);
  return 0;
}
