// Printing for the CLI: results on stdout, progress and errors on stderr.
import path from 'node:path';
import { BangerError, exitCodeFor, messageWithCauses, type ErrorCode } from '../protocol/errors.ts';
import type { ProgressEvent } from '../protocol/jsonrpc.ts';
import { resolvePaths } from '../system/paths.ts';

export interface Output {
  out(text: string): void;
  err(text: string): void;
  /** Bytes on stdout as they are (a patch may hold any bytes); `out` with latin1 text where not given. */
  raw?(data: Uint8Array): void;
}

export const stdio: Output = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  raw: (data) => process.stdout.write(data),
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
  /** Print the error as one JSON object, `{"error":{"code","message","hint"}}` (with --json). */
  json?: boolean;
  /** The command that failed, e.g. "banger vm create", for hints that point at its --help. */
  command?: string;
}

/**
 * Prints an error with its hint and returns the exit status for it. Stacks only for unexpected errors. Every
 * error gets a hint: its own, else one from what it wraps, else one for its code.
 */
export function reportError(output: Output, err: unknown, options: ReportOptions = {}): number {
  const debug = Boolean(process.env.BANGER_DEBUG);
  const where: HintContext = { logDir: () => options.logDir ?? resolvePaths().logDir, command: options.command ?? 'banger' };
  const subject = options.subject === undefined ? '' : `${options.subject}: `;
  let code: ErrorCode;
  let message: string;
  let hint: string;
  if (err instanceof BangerError) {
    code = err.code;
    message = messageWithCauses(err);
    hint = hintInChain(err) ?? fallbackHint(err.code, where);
  } else {
    code = 'INTERNAL';
    message = `unexpected error: ${err instanceof Error && debug && !options.json ? err.stack : messageWithCauses(err)}`;
    hint = `${debug ? '' : 'rerun with BANGER_DEBUG=1 for a stack trace; '}see the daemon log at ${path.join(where.logDir(), 'bangerd.log')}`;
  }
  if (options.json) {
    output.err(JSON.stringify({ error: { code, message: `${subject}${message}`, hint } }));
  } else {
    output.err(`banger: ${subject}${message}`);
    output.err(`hint: ${hint}`);
  }
  return exitCodeFor(code);
}

/** The first hint of an error or of the errors it wraps. */
function hintInChain(err: Error): string | undefined {
  let current: unknown = err;
  for (let depth = 0; current instanceof Error && depth < 6; depth++) {
    if (current instanceof BangerError && current.hint) return current.hint;
    current = current.cause;
  }
  return undefined;
}

interface HintContext {
  logDir(): string;
  /** The command that failed, "banger" when not known. */
  command: string;
}

/** For errors that came without a hint of their own: one per code, so no error is printed without one. */
const FALLBACK_HINTS: { readonly [C in ErrorCode]: (where: HintContext) => string } = {
  INVALID_ARGUMENT: ({ command }) => `see ${command} --help`,
  VM_NOT_FOUND: () => 'see the VMs there are: banger vm list --all',
  VM_NAME_TAKEN: () => 'pick another --name, or delete the VM that has it: banger vm delete NAME',
  VM_BAD_STATE: () => 'see the state of each VM: banger vm list (start a stopped one: banger vm start NAME)',
  MISSING_TOOL: () => 'install what banger needs, as root: bash scripts/setup.sh',
  TOOL_FAILED: () => 'run the command above by hand to see why it failed',
  KERNEL_NOT_FOUND: () => 'install the host kernel package (apt-get install linux-image-amd64); see the kernels there are: banger kernel list',
  IMAGE_NOT_FOUND: () => 'see the images there are: banger image list (debian-bookworm is built on first use)',
  IMAGE_BUILD_FAILED: ({ logDir }) => `see ${path.join(logDir(), 'bangerd-root.log')}, then try again: banger vm run`,
  VMM_FAILED: ({ logDir }) => `see the guest's console: banger vm logs NAME, and ${path.join(logDir(), 'bangerd.log')}`,
  SSH_TIMEOUT: () => 'see what the guest printed: banger vm logs NAME; a slow host may need more time: --ssh-timeout SECONDS',
  NETWORK_FAILED: ({ logDir }) => `see ${path.join(logDir(), 'bangerd-root.log')}; restarting both daemons sets the bridge up again: banger daemon stop && banger daemon start`,
  HELPER_UNAVAILABLE: () => 'start it (as root): banger daemon start; see what runs: banger daemon status',
  HELPER_REFUSED: ({ logDir }) => 'bangerd-root acts only within the directories and network it was started for; if BANGER_HOME or the network settings '
    + `changed since, restart both: banger daemon stop && banger daemon start; otherwise see ${path.join(logDir(), 'bangerd-root.log')}`,
  DAEMON_UNAVAILABLE: () => 'start it: banger daemon start; see what runs: banger daemon status',
  WORKSPACE_FAILED: () => 'see the VM\'s state with banger vm exec VM -- git -C /root/repo status',
  AGENT_UNAVAILABLE: () => 'see the guest\'s console: banger vm logs NAME; restarting the VM restarts its agent: banger vm restart NAME',
  AGENT_FAILED: () => 'the message above is the guest\'s own error; check the command or path inside the guest: banger vm ssh NAME',
  STORE_TOO_NEW: () => 'upgrade banger to the version that wrote the database, or point BANGER_HOME at another directory',
  RELEASE_INVALID: () => 'nothing was installed; try again later, or report the release to its publisher',
  UPDATE_FAILED: ({ logDir }) => `see ${path.join(logDir(), 'bangerd.log')} and banger doctor`,
  NOT_INSTALLED: () => 'a checkout updates with git pull && bash scripts/setup.sh; an install comes from a release\'s install.sh',
  CANCELLED: () => 'see what is left: banger vm list --all',
  INTERNAL: ({ logDir }) => `this is a bug in banger or a failure it does not explain yet; the daemon log has the details: ${path.join(logDir(), 'bangerd.log')}`,
};

function fallbackHint(code: ErrorCode, where: HintContext): string {
  return FALLBACK_HINTS[code](where);
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
