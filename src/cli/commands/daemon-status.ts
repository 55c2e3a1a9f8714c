// banger daemon status: whether bangerd and bangerd-root run; exits 15 when bangerd does not.
import { exitCodeFor } from '../../protocol/errors.ts';
import { configuredNetwork, helperStartCommand } from '../../system/helper-command.ts';
import { connect } from '../../sdk/client.ts';
import { isSocketAlive } from '../../system/socket-server.ts';
import { resolvePaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

export async function daemonStatus(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const paths = resolvePaths();
  if (!(await isSocketAlive(paths.daemonSocket))) {
    const helper = await isSocketAlive(paths.helperSocket);
    if (flags.json) printJson(ctx.output, { running: false, socket: paths.daemonSocket, helper: { reachable: helper, socket: paths.helperSocket } });
    else ctx.output.out(`bangerd: not running (${paths.daemonSocket})\nbangerd-root: ${helper ? 'running' : 'not running'}\nstart both: banger daemon start`);
    return exitCodeFor('DAEMON_UNAVAILABLE');
  }
  const client = await connect({ autoStart: false });
  const s = await client.status();
  client.close();
  if (flags.json) printJson(ctx.output, { running: true, ...s });
  else {
    ctx.output.out([
      `bangerd:      running, pid ${s.pid}, version ${s.version}, socket ${s.socket}`,
      `bangerd-root: ${s.helper.reachable ? `running, pid ${s.helper.pid}` : `not running; start it: ${helperStartCommand(paths, process.getuid?.() ?? 0, process.getgid?.() ?? 0, configuredNetwork(paths))}`}`,
      `state:        ${s.home}`,
      `network:      ${s.netns ? `guests in netns ${s.netns}` : 'host network namespace'}`,
      `.vm names:    ${s.dns?.listening ? `DNS on ${s.dns.address} (dig @127.0.0.1 -p ${s.dns.address?.split(':')[1]} NAME.vm)` : `no DNS server${s.dns?.error ? `: ${s.dns.error}` : ''}`}`,
      `vms:          ${s.vms.running} running, ${s.vms.total} in all`,
    ].join('\n'));
  }
  return 0;
}
