// The signals `vm kill` may send to a VMM: each one ends QEMU, so the VM always ends stopped.
import { BangerError } from './errors.ts';

export const KILL_SIGNALS = ['SIGKILL', 'SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const;
export type KillSignal = (typeof KILL_SIGNALS)[number];

/** The default: like `docker kill`, nothing in the guest or the VMM gets a say. */
export const DEFAULT_KILL_SIGNAL: KillSignal = 'SIGKILL';

const NUMBERS: Record<string, KillSignal> = { 9: 'SIGKILL', 15: 'SIGTERM', 2: 'SIGINT', 1: 'SIGHUP', 3: 'SIGQUIT' };

/** "KILL", "sigterm", "SIGINT" or "15" as a KillSignal; anything else is INVALID_ARGUMENT. */
export function parseKillSignal(text: string): KillSignal {
  const upper = text.trim().toUpperCase();
  const name = NUMBERS[upper] ?? (upper.startsWith('SIG') ? upper : `SIG${upper}`);
  const found = KILL_SIGNALS.find((s) => s === name);
  if (!found) {
    throw new BangerError('INVALID_ARGUMENT', `--signal ${JSON.stringify(text)} is not one vm kill sends`, {
      hint: `use one of ${KILL_SIGNALS.map((s) => s.slice(3)).join(', ')} (or their numbers 9, 15, 2, 1, 3), e.g. --signal TERM`,
    });
  }
  return found;
}
