// Printing for the CLI: results on stdout, progress and errors on stderr.
import { BangerError, exitCodeFor, messageOf } from '../protocol/errors.ts';
import type { ProgressEvent } from '../protocol/jsonrpc.ts';

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

/** Prints an error with its hint and returns the exit status for it. Stacks only for unexpected errors. */
export function reportError(output: Output, err: unknown): number {
  if (err instanceof BangerError) {
    output.err(`banger: ${err.message}`);
    if (err.hint) output.err(`hint: ${err.hint}`);
    return exitCodeFor(err.code);
  }
  output.err(`banger: unexpected error: ${err instanceof Error && process.env.BANGER_DEBUG ? err.stack : messageOf(err)}`);
  return 70;
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
