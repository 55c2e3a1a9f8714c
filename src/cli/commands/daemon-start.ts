// banger daemon start: bangerd, and bangerd-root when run as root, in the background.
import { ensureDaemons } from '../../sdk/autostart.ts';
import { resolvePaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { serviceInstall, systemctlBoth } from '../service-install.ts';

export async function daemonStart(ctx: CliContext): Promise<number> {
  if (serviceInstall()) {
    ctx.output.out(systemctlBoth('start'));
    return 0;
  }
  const report = await ensureDaemons(resolvePaths());
  for (const w of report.warnings) ctx.output.err(`banger: ${w}`);
  ctx.output.out(report.started.length > 0 ? `started ${report.started.join(' and ')}` : 'bangerd is already running');
  return 0;
}
