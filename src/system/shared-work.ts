// Work that several callers may ask for at once (a pull of one image): it runs once, every caller gets its
// result, and it is cancelled only when every caller has given up. The first caller's Ctrl-C must not fail a
// second caller's pull, and a pull nobody waits for any more must not keep downloading.
import { raceSignal } from './race-signal.ts';

interface Running<V> {
  promise: Promise<V>;
  controller: AbortController;
  waiters: number;
}

export class SharedWork<K, V> {
  private readonly running = new Map<K, Running<V>>();

  /** `work` gets a signal that fires once all callers' signals have; `joined` runs when the work was under way. */
  run(key: K, signal: AbortSignal, work: (signal: AbortSignal) => Promise<V>, joined?: () => void): Promise<V> {
    let entry = this.running.get(key);
    if (entry) joined?.();
    else {
      const controller = new AbortController();
      const promise = work(controller.signal).finally(() => this.running.delete(key));
      // Its callers see the failure; a failure nobody waits for any more is not an unhandled rejection.
      promise.catch(() => undefined);
      entry = { promise, controller, waiters: 0 };
      this.running.set(key, entry);
    }
    const current = entry;
    current.waiters++;
    let left = false;
    const leave = (): void => {
      if (left) return;
      left = true;
      if (--current.waiters === 0) current.controller.abort();
    };
    return raceSignal(current.promise, signal).finally(leave);
  }

  has(key: K): boolean {
    return this.running.has(key);
  }
}
