/** Runs `fn` with a signal that Ctrl-C aborts; the daemon then undoes the operation. A second Ctrl-C exits. */
export async function withCtrlC<T>(onFirst: () => void, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const handler = (): void => {
    if (controller.signal.aborted) process.exit(130);
    onFirst();
    controller.abort();
  };
  process.on('SIGINT', handler);
  try {
    return await fn(controller.signal);
  } finally {
    process.removeListener('SIGINT', handler);
  }
}
