// banger version: this CLI's version, commit and build time, and the running bangerd's when there is one (it is not
// started for this). A run from src/ (no build stamp) says it is a development build.
import { connect } from '../../sdk/client.ts';
import { isSocketAlive } from '../../system/socket-server.ts';
import { resolvePaths } from '../../system/paths.ts';
import { BUILD } from '../../version.ts';
import type { VersionInfo } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { printJson } from '../output.ts';

export async function version(ctx: CliContext, flags: { json?: boolean }): Promise<number> {
  const paths = resolvePaths();
  let daemon: VersionInfo | null = null;
  if (await isSocketAlive(paths.daemonSocket)) {
    const client = await connect({ autoStart: false });
    daemon = await client.version();
    client.close();
  }
  if (flags.json) {
    printJson(ctx.output, { version: BUILD.version, commit: BUILD.commit, builtAt: BUILD.builtAt, node: process.version, daemon });
    return 0;
  }
  const lines = [
    `banger ${BUILD.version}`,
    BUILD.builtAt ? `commit ${BUILD.commit ?? 'unknown'}` : 'development build (running from src/)',
    ...(BUILD.builtAt ? [`built ${BUILD.builtAt}`] : []),
    `node ${process.version}`,
    daemon ? `bangerd ${daemon.version}${daemon.commit ? ` (commit ${daemon.commit})` : ''}, pid ${daemon.pid}` : 'bangerd not running',
  ];
  // Two parts that disagree are what an upgrade that restarted only one of them leaves.
  if (daemon && (daemon.version !== BUILD.version || daemon.commit !== BUILD.commit)) lines.push('warning: bangerd runs another build than this CLI; restart it: banger daemon stop');
  ctx.output.out(lines.join('\n'));
  return 0;
}
