// banger vm health VM: what the guest agent says about a running VM (systemd state, uptime, agent version).
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

export async function vmHealth(ctx: CliContext, ref: string, flags: { json?: boolean }): Promise<number> {
  const h = await (await ctx.client()).vmHealth(ref);
  if (flags.json) printJson(ctx.output, h);
  else {
    ctx.output.out([
      `vm:      ${h.vm}`,
      `system:  ${h.systemState}`,
      `uptime:  ${Math.round(h.uptimeSec)}s`,
      `agent:   ${h.agentVersion}${h.agentOutdated ? ' (older than this banger\'s; vm restart brings the new one)' : ''}`,
    ].join('\n'));
  }
  return 0;
}
