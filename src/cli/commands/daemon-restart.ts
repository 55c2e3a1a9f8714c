// banger daemon restart: bangerd and bangerd-root stopped and started again (through systemd when installed as
// services); running VMs keep running and the new bangerd finds them.
import { ensureDaemons, stopDaemons } from '../../sdk/autostart.ts';
import { resolvePaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { serviceInstall, systemctlBoth } from '../service-install.ts';

export async function daemonRestart(ctx: CliContext): Promise<number> {
  if (serviceInstall()) {
    ctx.output.out(systemctlBoth('restart'));
    return 0;
  }
  const paths = resolvePaths();
  const stopped = await stopDaemons(paths);
  const report = await ensureDaemons(paths);
  for (const w of report.warnings) ctx.output.err(`banger: ${w}`);
  ctx.output.out(`${stopped.length > 0 ? `stopped ${stopped.join(' and ')}; ` : ''}started ${report.started.join(' and ') || 'nothing (both were running)'} (running VMs keep running)`);
  return 0;
}
