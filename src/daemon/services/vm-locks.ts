/** One operation per VM at a time; operations on different VMs run in parallel. */
export class VmLocks {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `fn` once every earlier operation on `id` has finished, whatever their outcome. */
  async run<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(id) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(fn);
    const tail = run.catch(() => undefined);
    this.tails.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.tails.get(id) === tail) this.tails.delete(id);
    }
  }

  /** Whether an operation on `id` runs or waits now. */
  isHeld(id: string): boolean {
    return this.tails.has(id);
  }
}
