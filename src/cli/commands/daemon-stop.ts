// banger daemon stop: stops bangerd and bangerd-root; running VMs keep running.
import { stopDaemons } from '../../sdk/autostart.ts';
import { resolvePaths } from '../../system/paths.ts';
import type { CliContext } from '../context.ts';
import { serviceInstall, systemctlBoth } from '../service-install.ts';

export async function daemonStop(ctx: CliContext): Promise<number> {
  if (serviceInstall()) {
    ctx.output.out(systemctlBoth('stop'));
    return 0;
  }
  const stopped = await stopDaemons(resolvePaths());
  ctx.output.out(stopped.length > 0 ? `stopped ${stopped.join(' and ')} (running VMs keep running)` : 'bangerd is not running');
  return 0;
}
