// banger ssh-proxy HOST PORT: the ProxyCommand of `ssh NAME.vm` (see banger ssh-config). Joins stdin/stdout to
// PORT inside the VM through bangerd and the guest agent, so it works whatever network the VM lives in.
import { BangerError } from '../../protocol/errors.ts';
import { connectGuestPort } from '../../sdk/tunnel.ts';
import type { CliContext } from '../context.ts';

/** NAME from NAME.vm (the name ssh was given), or NAME itself. */
export function vmNameOfHost(host: string): string {
  const name = host.toLowerCase().replace(/\.$/, '').replace(/\.vm$/, '');
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) {
    throw new BangerError('INVALID_ARGUMENT', `${JSON.stringify(host)} is not a VM host name (NAME.vm)`, { hint: 'see the VMs there are: banger vm list' });
  }
  return name;
}

export async function sshProxy(ctx: CliContext, host: string, portText: string): Promise<number> {
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new BangerError('INVALID_ARGUMENT', `${JSON.stringify(portText)} is not a port`);
  // Starts bangerd if needed, as every other command does.
  await ctx.client();
  const socket = await connectGuestPort(vmNameOfHost(host), port);
  return new Promise((resolve) => {
    process.stdin.pipe(socket);
    socket.pipe(process.stdout);
    socket.on('end', () => resolve(0));
    socket.on('close', () => resolve(0));
    socket.on('error', () => resolve(255));
  });
}
