// A Clock whose time moves only when code sleeps on it: a sleep returns at once, with now() moved forward by
// the time asked for. Polling loops and deadlines run in microseconds of real time.
import type { Clock } from '../../src/system/clock.ts';

export class FakeClock implements Clock {
  private current: number;
  /** Every sleep asked for, in order (ms). */
  readonly sleeps: number[] = [];

  constructor(start = Date.UTC(2026, 10, 23, 12, 0, 0)) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    this.sleeps.push(ms);
    this.current += ms;
    // Let other work run between attempts, as a real pause would.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  /** Moves time forward without a sleep (a slow step that took `ms`). */
  advance(ms: number): void {
    this.current += ms;
  }
}
