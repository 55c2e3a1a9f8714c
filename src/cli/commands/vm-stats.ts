// banger vm stats VM: resource use inside a running VM (from its guest agent) and its VMM's host memory.
import type { VmStatsResult } from '../../protocol/methods.ts';
import type { CliContext } from '../context.ts';
import { formatBytes, printJson } from '../output.ts';

export async function vmStats(ctx: CliContext, ref: string, flags: { json?: boolean }): Promise<number> {
  const stats = await (await ctx.client()).vmStats(ref);
  if (flags.json) printJson(ctx.output, stats);
  else ctx.output.out(describeStats(stats));
  return 0;
}

export function describeStats(s: VmStatsResult): string {
  const pct = (used: number, total: number): string => (total > 0 ? ` (${Math.round((used / total) * 100)}%)` : '');
  return [
    `vm:      ${s.vm}`,
    `cpu:     ${s.cpuPercent.toFixed(1)}% of ${s.cpus} vCPU`,
    `memory:  ${formatBytes(s.memUsedBytes)} used of ${formatBytes(s.memTotalBytes)}${pct(s.memUsedBytes, s.memTotalBytes)}`,
    ...s.disks.map((d) => `disk ${d.mount}:${' '.repeat(Math.max(1, 6 - d.mount.length))}${formatBytes(d.usedBytes)} used of ${formatBytes(d.totalBytes)}${pct(d.usedBytes, d.totalBytes)}`),
    `uptime:  ${formatUptime(s.uptimeSec)}`,
    `vmm:     ${s.vmmRssBytes === null ? '-' : `${formatBytes(s.vmmRssBytes)} resident on the host`}`,
    `agent:   ${s.agentVersion}`,
  ].join('\n');
}

function formatUptime(sec: number): string {
  const s = Math.floor(sec);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s % 60}s` : `${s}s`;
}
