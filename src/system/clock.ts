// Time is a seam: the daemon, the drivers, the store and the SDK's autostart take a Clock, and unit tests pass
// FakeClock (test/fakes/fake-clock.ts), so no unit test waits real seconds.
import { BangerError } from '../protocol/errors.ts';

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or early (without an error) when `signal` fires. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve();
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/** An ISO timestamp of the clock's now, for records. */
export function isoNow(clock: Clock): string {
  return new Date(clock.now()).toISOString();
}

export interface PollOptions {
  clock: Clock;
  /** Give up after this many milliseconds from the first attempt. */
  timeoutMs: number;
  /** Pause between attempts. */
  intervalMs: number;
  signal?: AbortSignal;
  /** Message of the CANCELLED error when `signal` fires. */
  cancelMessage?: string;
}

/**
 * Calls `attempt` until it returns something other than undefined, then returns that; returns undefined once
 * the deadline passes (the caller says what timing out means). A fired signal ends it with CANCELLED. The one
 * poll-until-deadline loop: readiness waits, process exits and socket waits all use it.
 */
export async function pollUntil<T>(attempt: () => Promise<T | undefined> | T | undefined, options: PollOptions): Promise<T | undefined> {
  const { clock, signal } = options;
  const deadline = clock.now() + options.timeoutMs;
  for (;;) {
    if (signal?.aborted) throw new BangerError('CANCELLED', options.cancelMessage ?? 'cancelled by the caller');
    const value = await attempt();
    if (value !== undefined) return value;
    if (clock.now() >= deadline) return undefined;
    await clock.sleep(Math.min(options.intervalMs, Math.max(0, deadline - clock.now())), signal);
  }
}

/**
 * Work shared by every caller that asks for the same key while it runs: one run, every caller gets its outcome.
 * The work is not tied to any one caller (see raceSignal to let a caller stop waiting without stopping it).
 */
export class SingleFlight<K, V> {
  private readonly running = new Map<K, Promise<V>>();

  run(key: K, work: () => Promise<V>): Promise<V> {
    let promise = this.running.get(key);
    if (!promise) {
      promise = work().finally(() => this.running.delete(key));
      this.running.set(key, promise);
    }
    return promise;
  }

  has(key: K): boolean {
    return this.running.has(key);
  }
}
