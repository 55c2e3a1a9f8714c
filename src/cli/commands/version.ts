// banger version: this CLI's version, and the running bangerd's when there is one (it is not started for this).
import { connect } from '../../sdk/client.ts';
import { isSocketAlive } from '../../system/socket-server.ts';
import { resolvePaths } from '../../system/paths.ts';
import { VERSION } from '../../version.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

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
