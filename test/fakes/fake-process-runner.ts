// A ProcessRunner that starts nothing: it records each call and answers from scripted handlers.
import fs from 'node:fs';
import type { ProcessRunner, RunOptions, RunResult } from '../../src/system/process.ts';

export interface FakeCall {
  command: string;
  args: string[];
  options: RunOptions;
}

/** Answers one call; returning undefined falls through to the default answer (exit 0, no output). */
export type FakeHandler = (call: FakeCall) => Partial<RunResult> | undefined | Promise<Partial<RunResult> | undefined>;

export class FakeProcessRunner implements ProcessRunner {
  readonly calls: FakeCall[] = [];
  private readonly handlers = new Map<string, FakeHandler>();

  constructor() {
    // ssh-keygen -f PATH writes PATH and PATH.pub; VmService reads both back.
    this.on('ssh-keygen', ({ args }) => {
      const i = args.indexOf('-f');
      const file = i >= 0 ? args[i + 1] : undefined;
      if (file === undefined) return { code: 1, stderr: 'fake ssh-keygen: no -f' };
      const comment = args[args.indexOf('-C') + 1] ?? 'fake';
      fs.writeFileSync(file, `-----BEGIN OPENSSH PRIVATE KEY-----\nfake ${comment}\n-----END OPENSSH PRIVATE KEY-----\n`, { mode: 0o600 });
      fs.writeFileSync(`${file}.pub`, `ssh-ed25519 AAAAC3NzaFAKE${comment.replace(/[^a-zA-Z0-9]/g, '')} ${comment}\n`);
      return { code: 0 };
    });
  }

  /** Scripts the answer for every call to `command` (replacing an earlier handler for it). */
  on(command: string, handler: FakeHandler): this {
    this.handlers.set(command, handler);
    return this;
  }

  callsTo(command: string): FakeCall[] {
    return this.calls.filter((c) => c.command === command);
  }

  async run(command: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: FakeCall = { command, args: [...args], options };
    this.calls.push(call);
    const answer = (await this.handlers.get(command)?.(call)) ?? {};
    return { code: 0, signal: null, stdout: '', stderr: '', ...answer };
  }
}
