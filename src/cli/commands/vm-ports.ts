// banger vm ports VM: what listens in a running VM (from its guest agent), HTTP and HTTPS listeners shown as
// URLs, and the host ports forwarded to it.
import type { VmPortsResult } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson, table } from '../output.ts';

export async function vmPorts(ctx: CliContext, ref: string, flags: { json?: boolean }): Promise<number> {
  const result = await (await ctx.client()).vmPorts(ref);
  if (flags.json) printJson(ctx.output, result);
  else ctx.output.out(portsTable(result));
  return 0;
}

export function portsTable(result: VmPortsResult): string {
  const rows: Array<Array<string | number | null>> = result.ports.map((p) => [
    p.proto, p.endpoint, p.process ?? '-', truncate(p.command ?? '-', 60), p.forwardedFrom.length > 0 ? p.forwardedFrom.map((h) => `127.0.0.1:${h}`).join(', ') : '-',
  ]);
  // A forward to a port nothing listens on (yet) is listed too, so it is not forgotten.
  for (const f of result.forwards) {
    if (!result.ports.some((p) => p.proto === 'tcp' && p.port === f.guestPort)) rows.push(['tcp', `${result.vm}.vm:${f.guestPort}`, '(nothing listens)', '-', `127.0.0.1:${f.hostPort}`]);
  }
  if (rows.length === 0) return `nothing listens in ${result.vm}`;
  return table(['PROTO', 'ENDPOINT', 'PROCESS', 'COMMAND', 'FORWARDED FROM'], rows);
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
