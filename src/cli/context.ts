import type { BangerClient } from '../sdk/client.ts';
import type { SignalSource } from './cancel.ts';
import type { Confirm } from './confirm.ts';
import type { Output } from './output.ts';
import type { RunSsh } from './ssh-session.ts';
import type { RunViaAgent } from './agent-session.ts';

/** What every command handler gets; handlers return an exit status and never exit the process themselves. */
export interface CliContext {
  output: Output;
  client(): Promise<BangerClient>;
  /** Arguments after a literal `--` on the command line (the guest command). */
  guestCommand: string[] | null;
  /**
   * Ends the process at once with `status` (process.exit in main; tests pass a fake). Only for what cannot wait
   * for the handler to return, such as a second Ctrl-C while an operation is being undone.
   */
  exit(status: number): void;
  /** Where SIGINT, SIGTERM and SIGHUP arrive; the process when not given (tests pass an EventEmitter). */
  signals?: SignalSource;
  /** Runs ssh attached to the terminal; runSsh when not given (tests pass a fake). */
  runSsh?: RunSsh;
  /** Runs a command through the guest agent; runViaAgent when not given (tests pass a fake). */
  runViaAgent?: RunViaAgent;
  /** The command that runs, e.g. "banger vm stop", for hints that point at its --help (set by main). */
  command?: string;
  /** Asks a y/N question on the terminal; terminalConfirm when not given (tests pass a fake). */
  confirm?: Confirm;
}
