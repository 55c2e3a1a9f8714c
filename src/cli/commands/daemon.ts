import { exitCodeFor } from '../../protocol/errors.ts';
import { helperStartCommand } from '../../system/helper-command.ts';
import { connect } from '../../sdk/client.ts';
import { ensureDaemons, stopDaemons } from '../../sdk/autostart.ts';
import { isSocketAlive } from '../../system/socket-server.ts';
import { resolvePaths } from '../../system/paths.ts';
import { VERSION } from '../../version.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

export async function daemonStart(ctx: CliContext): Promise<number> {
  const report = await ensureDaemons(resolvePaths());
  for (const w of report.warnings) ctx.output.err(`banger: ${w}`);
  ctx.output.out(report.started.length > 0 ? `started ${report.started.join(' and ')}` : 'bangerd is already running');
  return 0;
}

export async function daemonStop(ctx: CliContext): Promise<number> {
  const stopped = await stopDaemons(resolvePaths());
  ctx.output.out(stopped.length > 0 ? `stopped ${stopped.join(' and ')} (running VMs keep running)` : 'bangerd is not running');
  return 0;
}

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
      `bangerd-root: ${s.helper.reachable ? `running, pid ${s.helper.pid}` : `not running; start it: ${helperStartCommand(paths, process.getuid?.() ?? 0, process.getgid?.() ?? 0)}`}`,
      `state:        ${s.home}`,
      `network:      ${s.netns ? `guests in netns ${s.netns}` : 'host network namespace'}`,
      `vms:          ${s.vms.running} running, ${s.vms.total} in all`,
    ].join('\n'));
  }
  return 0;
}

export async function version(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const paths = resolvePaths();
  let daemon: { version: string; pid: number } | null = null;
  if (await isSocketAlive(paths.daemonSocket)) {
    const client = await connect({ autoStart: false });
    daemon = await client.version();
    client.close();
  }
  if (flags.json) printJson(ctx.output, { version: VERSION, node: process.version, daemon });
  else ctx.output.out(`banger ${VERSION} (node ${process.version})${daemon ? `\nbangerd ${daemon.version} (pid ${daemon.pid})` : '\nbangerd not running'}`);
  return 0;
}
