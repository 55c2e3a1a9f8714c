import { spawn } from 'node:child_process';
import { BangerError } from '../protocol/errors.ts';

export interface RunOptions {
  signal?: AbortSignal;
  input?: string;
  /** An open file the child reads as its standard input (instead of `input`). */
  stdinFd?: number;
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
        stdio: [options.stdinFd ?? (options.input === undefined ? 'ignore' : 'pipe'), 'pipe', 'pipe'],
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
          reject(new BangerError('MISSING_TOOL', `${command} is not installed or not on PATH`, { hint: 'run scripts/setup.sh, or install the Debian package that provides it', cause: err }));
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

/** Run and require exit status 0; the error names the command and carries its stderr. */
export async function runChecked(runner: ProcessRunner, command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const result = await runner.run(command, args, options);
  if (options.signal?.aborted) throw new BangerError('CANCELLED', `${command} was cancelled`);
  if (result.code !== 0) {
    const detail = result.stderr.trim().split('\n').slice(-5).join('\n') || result.stdout.trim().split('\n').slice(-5).join('\n');
    throw new Error(`${command} ${args.join(' ')} failed (${result.code ?? result.signal}): ${detail}`);
  }
  return result;
}
