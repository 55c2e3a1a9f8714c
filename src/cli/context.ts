import type { BangerClient } from '../sdk/client.ts';
import type { Output } from './output.ts';

/** What every command handler gets; handlers return an exit status and never exit the process themselves. */
export interface CliContext {
  output: Output;
  client(): Promise<BangerClient>;
  /** Arguments after a literal `--` on the command line (the guest command). */
  guestCommand: string[] | null;
}
