// Agent benchmark: `banger vm exec VM -- true` through the guest agent against `ssh VM true` riding on an open
// ssh connection (the control connection bangerd keeps after boot), in the same run, alternating; prints the ratio
// of the medians (goal ≤ 1.0) and the agent's resident memory in the guest (goal ≤ 10 MiB). Never fails on them.
//
// Like the other VM benchmarks: a fresh BANGER_HOME under /var/tmp (removed at the end) unless BANGER_BENCH_HOME is
// set, and every bridge, tap and VM in a network namespace this script creates and deletes.
//
// Environment: BANGER_BENCH_HOME, BENCH_ITERATIONS (default 10 of each).
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { BANGER, benchHome, median } from './bench-home.ts';
import { sshCommand } from '../src/protocol/ssh-command.ts';
import type { SshTarget } from '../src/protocol/methods.ts';
import { connect } from '../src/sdk/client.ts';
import { execInGuest } from '../src/sdk/tunnel.ts';
import { PassThrough } from 'node:stream';

const VM = 'bench-agent';
const bench = benchHome('agent', () => [VM]);
const { env: ENV, note } = bench;
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 10);
const GOAL_RATIO = 1.0;
const GOAL_RSS_MIB = 10;

function timed(command: string, args: string[]): { ms: number; stdout: string } {
  const start = performance.now();
  const r = spawnSync(command, args, { env: ENV, encoding: 'utf8', timeout: 5 * 60_000 });
  const ms = performance.now() - start;
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  return { ms, stdout: r.stdout };
}

async function main(): Promise<void> {
  note(`warm-up: vm create --name ${VM} (builds the image and kernel in a fresh BANGER_HOME)`);
  note(`warm-up took ${(timed(BANGER, ['vm', 'create', '--name', VM]).ms / 1000).toFixed(1)} s`);
  // Both sides are timed on a guest that finished booting (sshd answers well before systemd's last units start).
  spawnSync(BANGER, ['vm', 'exec', VM, '--', 'systemctl', 'is-system-running', '--wait'], { env: ENV, encoding: 'utf8', timeout: 5 * 60_000 });
  process.env.BANGER_HOME = bench.home;
  const sdk = await connect({ autoStart: false });
  const target: SshTarget = await sdk.sshTarget(VM);
  sdk.close();
  // The master connection lives in the VM's namespace; clients of it only talk to its socket on the host.
  const master = sshCommand(target, { tty: false, batch: true, control: 'master', command: ['true'] });
  timed(master.command, master.args);
  const client = sshCommand({ ...target, netns: null }, { tty: false, batch: true, control: 'reuse', command: ['true'] });
  const agent: number[] = [];
  const ssh: number[] = [];
  const sdkRuns: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    for (const kind of i % 2 === 0 ? ['agent', 'ssh', 'sdk'] : ['sdk', 'ssh', 'agent']) {
      if (kind === 'agent') agent.push(timed(BANGER, ['vm', 'exec', '--via', 'agent', VM, '--', 'true']).ms);
      else if (kind === 'ssh') ssh.push(timed(client.command, client.args).ms);
      else {
        // What a coding agent using the SDK pays: no CLI process to start.
        const start = performance.now();
        const result = await execInGuest(VM, ['true'], { stdout: new PassThrough(), stderr: new PassThrough() });
        if (result.code !== 0) throw new Error(`execInGuest true exited ${result.code}`);
        sdkRuns.push(performance.now() - start);
      }
    }
  }
  const status = timed(BANGER, ['vm', 'exec', '--via', 'agent', VM, '--', 'sh', '-c', 'grep VmRSS /proc/$(pgrep -x banger-agent)/status']).stdout;
  const rssKib = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  const ratio = median(agent) / median(ssh);
  const rssMib = rssKib / 1024;
  process.stdout.write([
    `vm exec VM -- true (agent):  median ${median(agent).toFixed(0)} ms (${agent.length} runs)`,
    `ssh VM true (open connection): median ${median(ssh).toFixed(0)} ms (${ssh.length} runs)`,
    `ratio ${ratio.toFixed(2)} (goal <= ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? 'met' : 'NOT met'})`,
    `SDK execInGuest(VM, ['true']): median ${median(sdkRuns).toFixed(0)} ms (ratio to ssh ${(median(sdkRuns) / median(ssh)).toFixed(2)}; no CLI process)`,
    `agent resident memory in the guest: ${rssMib.toFixed(1)} MiB (goal <= ${GOAL_RSS_MIB} MiB: ${rssMib <= GOAL_RSS_MIB ? 'met' : 'NOT met'})`,
    '',
  ].join('\n'));
}

await bench.run(main);
