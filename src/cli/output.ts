// Printing for the CLI: results on stdout, progress and errors on stderr.
import path from 'node:path';
import { BangerError, exitCodeFor, messageWithCauses, type ErrorCode } from '../protocol/errors.ts';
import type { ProgressEvent } from '../protocol/jsonrpc.ts';
import { resolvePaths } from '../system/paths.ts';

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const stdio: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

/** Progress lines with the time since the operation began, so slow stages are visible. */
export function progressPrinter(output: Output): (event: ProgressEvent) => void {
  const start = Date.now();
  return (event) => {
    const secs = ((Date.now() - start) / 1000).toFixed(1).padStart(5);
    if (event.stage === 'spec') output.err(`banger: ${event.message}`);
    else output.err(`  ${secs}s ${event.stage.padEnd(7)} ${event.message}`);
  };
}

export function printJson(output: Output, value: unknown): void {
  output.out(JSON.stringify(value, null, 2));
}

/** A plain aligned table; empty cells print as "-". */
export function table(headers: string[], rows: Array<Array<string | number | null>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (c === null || c === '' ? '-' : String(c))))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export interface ReportOptions {
  /** What the error is about, when one command works on several VMs. */
  subject?: string;
  /** Where bangerd and bangerd-root log; from the environment when not given. */
  logDir?: string;
}

/** Prints an error with its hint and returns the exit status for it. Stacks only for unexpected errors. */
export function reportError(output: Output, err: unknown, options: ReportOptions = {}): number {
  const prefix = options.subject === undefined ? 'banger: ' : `banger: ${options.subject}: `;
  const debug = Boolean(process.env.BANGER_DEBUG);
  const logDir = (): string => options.logDir ?? resolvePaths().logDir;
  if (err instanceof BangerError) {
    output.err(`${prefix}${messageWithCauses(err)}`);
    const hint = err.hint ?? fallbackHint(err.code, logDir);
    if (hint) output.err(`hint: ${hint}`);
    return exitCodeFor(err.code);
  }
  output.err(`${prefix}unexpected error: ${err instanceof Error && debug ? err.stack : messageWithCauses(err)}`);
  output.err(`hint: ${debug ? '' : 'rerun with BANGER_DEBUG=1 for a stack trace; '}see the daemon log at ${path.join(logDir(), 'bangerd.log')}`);
  return exitCodeFor('INTERNAL');
}

/** For errors that came without a hint of their own. */
function fallbackHint(code: ErrorCode, logDir: () => string): string | undefined {
  switch (code) {
    case 'HELPER_REFUSED':
      return 'bangerd-root acts only within the directories and network it was started for; if BANGER_HOME or the network settings '
        + `changed since, restart both: banger daemon stop && banger daemon start; otherwise see ${path.join(logDir(), 'bangerd-root.log')}`;
    case 'INTERNAL':
      return `this is a bug in banger or a failure it does not explain yet; the daemon log has the details: ${path.join(logDir(), 'bangerd.log')}`;
    default:
      return undefined;
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}
