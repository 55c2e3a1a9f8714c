import { spawn } from 'node:child_process';
import path from 'node:path';
import { BangerError } from '../protocol/errors.ts';
import { shellQuote } from '../protocol/ssh-command.ts';
import { packageOf } from './host-tools.ts';

export interface RunOptions {
  signal?: AbortSignal;
  input?: string;
  /** An open file the child reads as its standard input (instead of `input`). */
  stdinFd?: number;
  /** An open file the child writes its standard output to, byte for byte (`stdout` is then empty). */
  stdoutFd?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called for each line of output as it arrives (for progress). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Kill the process after this many milliseconds. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the runner killed it because timeoutMs passed. */
  timedOut?: boolean;
}

/** The seam for every child process banger starts; tests pass a fake. */
export interface ProcessRunner {
  run(command: string, args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

export class NodeProcessRunner implements ProcessRunner {
  run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, {
        cwd: options.cwd,
        env: options.env ?? process.env,
        stdio: [options.stdinFd ?? (options.input === undefined ? 'ignore' : 'pipe'), options.stdoutFd ?? 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      const partial = { stdout: '', stderr: '' };
      const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        if (stream === 'stdout') stdout += text;
        else stderr += text;
        if (!options.onLine) return;
        const lines = (partial[stream] + text).split('\n');
        partial[stream] = lines.pop() ?? '';
        for (const line of lines) options.onLine(line, stream);
      };
      child.stdout?.on('data', collect('stdout'));
      child.stderr?.on('data', collect('stderr'));
      const kill = (): void => {
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 2000).unref();
      };
      let timedOut = false;
      const timer = options.timeoutMs
        ? setTimeout(() => {
            timedOut = true;
            kill();
          }, options.timeoutMs)
        : undefined;
      options.signal?.addEventListener('abort', kill, { once: true });
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (timer) clearTimeout(timer);
        if (err.code === 'ENOENT') {
          const pkg = packageOf(command);
          const hint = pkg ? `${path.basename(command)} comes from the Debian package ${pkg}: apt-get install ${pkg} (or: banger doctor --fix)` : 'banger doctor names what is missing; banger doctor --fix installs it';
          reject(new BangerError('MISSING_TOOL', `${command} is not installed or not on PATH`, { hint, cause: err }));
        } else reject(err);
      });
      child.on('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        options.signal?.removeEventListener('abort', kill);
        for (const stream of ['stdout', 'stderr'] as const) {
          if (options.onLine && partial[stream]) options.onLine(partial[stream], stream);
        }
        resolve({ code, signal, stdout, stderr, timedOut });
      });
      if (options.input !== undefined) child.stdin?.end(options.input);
    });
  }
}

export interface CheckedRunOptions extends RunOptions {
  /** What to tell the user when the program fails; a hint for the program (or a generic one) when not given. */
  hint?: string;
}

/** Install and usage hints for the programs banger runs, by program name. */
const TOOL_HINTS: ReadonlyArray<[RegExp, string]> = [
  [/^qemu-(img|system-.*)$/, 'QEMU comes from apt-get install qemu-utils qemu-system-x86'],
  [/^mkfs\.ext4$/, 'mkfs.ext4 comes from apt-get install e2fsprogs; check the free disk space where banger keeps its files (df -h)'],
  [/^ip$/, 'ip comes from apt-get install iproute2'],
  [/^debootstrap$/, 'check that the Debian mirror (image.debian_mirror in config.toml) is reachable; debootstrap comes from apt-get install debootstrap'],
  [/^ssh-keygen$/, 'ssh-keygen comes from apt-get install openssh-client'],
];

/** What a failure's output says whatever the program: the causes a user fixes the same way for every tool. */
const OUTPUT_HINTS: ReadonlyArray<[RegExp, string]> = [
  [/No space left on device|ENOSPC/, 'the disk is full: free space where banger keeps its files (see df -h), then try again'],
  [/Permission denied|EACCES/, 'a file or directory is not writable for banger: check its owner and mode'],
];

/** The hint for a failed `command`: what its output says, what is known about the program, and to run it by hand. */
export function toolFailureHint(command: string, output = ''): string {
  const tool = path.basename(command);
  const cause = OUTPUT_HINTS.find(([pattern]) => pattern.test(output))?.[1];
  const known = TOOL_HINTS.find(([pattern]) => pattern.test(tool))?.[1];
  return [cause, known, `check that ${tool} works: run the command above by hand`].filter(Boolean).join('; ');
}

/** How a process ended, for messages: "exit status 2", "killed by SIGKILL", "timed out after 30s". */
function describeEnd(result: RunResult, options: RunOptions): string {
  if (result.timedOut) {
    const ms = options.timeoutMs ?? 0;
    return `timed out after ${ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`}`;
  }
  if (result.code !== null) return `exit status ${result.code}`;
  return `killed by ${result.signal ?? 'a signal'}`;
}

/** The last `n` lines of `text`, trimmed: the part of a program's output a message quotes. */
export function lastLines(text: string, n: number): string {
  return text.trim().split('\n').slice(-n).join('\n');
}

/**
 * Run and require exit status 0. A failure is TOOL_FAILED naming the command line, how it ended and the last
 * lines of its stderr (of stdout when stderr is empty); a missing program is MISSING_TOOL (from the runner).
 */
export async function runChecked(runner: ProcessRunner, command: string, args: readonly string[], options: CheckedRunOptions = {}): Promise<RunResult> {
  const { hint, ...runOptions } = options;
  const result = await runner.run(command, args, runOptions);
  if (options.signal?.aborted) throw new BangerError('CANCELLED', `${command} was cancelled`, { hint: 'run the command again when you want it' });
  if (result.code !== 0 || result.timedOut) {
    const commandLine = [command, ...args].map(shellQuote).join(' ');
    const detail = lastLines(result.stderr, 5) || lastLines(result.stdout, 5);
    throw new BangerError('TOOL_FAILED', `${commandLine} failed (${describeEnd(result, options)})${detail ? `: ${detail}` : ''}`, {
      hint: hint ?? toolFailureHint(command, detail),
    });
  }
  return result;
}
