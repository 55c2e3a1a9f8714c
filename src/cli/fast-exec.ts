// `banger vm exec [--via agent] VM -- CMD` without a terminal is what scripts and coding agents call in loops. It
// goes to the guest agent without building the command tree (commander and every command's declaration): about
// a sixth of such a call. Anything else (other flags, --help, a terminal, --via ssh) takes the full CLI, whose
// vm exec does the same thing more slowly.
import type { Output } from './output.ts';

export interface FastExec {
  vm: string;
  command: string[];
}

/** The VM and command when `argv` is a plain agent exec, else null (the full CLI handles it). */
export function fastExecArgs(argv: readonly string[], terminal: boolean): FastExec | null {
  const dashes = argv.indexOf('--');
  if (dashes < 0 || argv[0] !== 'vm' || argv[1] !== 'exec') return null;
  const own = argv.slice(2, dashes);
  const command = argv.slice(dashes + 1);
  if (command.length === 0) return null;
  let via: string | null = null;
  const rest: string[] = [];
  for (let i = 0; i < own.length; i++) {
    const a = own[i]!;
    if (a === '--via') via = own[++i] ?? '';
    else if (a.startsWith('--via=')) via = a.slice('--via='.length);
    else rest.push(a);
  }
  if (rest.length !== 1 || rest[0]!.startsWith('-')) return null;
  if (via === null ? terminal : via !== 'agent') return null;
  return { vm: rest[0]!, command };
}

/** Runs it as the full CLI's vm exec would, with the same errors, hints and exit statuses. */
export async function runFastExec(exec: FastExec, output: Output): Promise<number> {
  const [{ runViaAgent }, { reportError }] = await Promise.all([import('./agent-session.ts'), import('./output.ts')]);
  try {
    return await runViaAgent(exec.vm, exec.command, {
      startDaemon: async () => {
        const { connect } = await import('../sdk/client.ts');
        (await connect({ onNotice: (m) => output.err(`banger: ${m}`) })).close();
      },
    });
  } catch (err) {
    return reportError(output, err, { command: 'banger vm exec' });
  }
}
