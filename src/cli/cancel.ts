import os from 'node:os';

/** What withCtrlC needs from the CLI context: where signals arrive, and how to end the process at once. */
export interface CtrlCContext {
  signals?: SignalSource;
  exit(status: number): void;
}

/**
 * Runs `fn` with a signal that Ctrl-C aborts; the daemon then undoes the operation. A second Ctrl-C exits 130
 * at once through `ctx.exit`, for a user who will not wait for the undo.
 */
export async function withCtrlC<T>(ctx: CtrlCContext, onFirst: () => void, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const source = ctx.signals ?? process;
  const controller = new AbortController();
  const handler = (): void => {
    if (controller.signal.aborted) {
      ctx.exit(signalExitStatus('SIGINT'));
      return;
    }
    onFirst();
    controller.abort();
  };
  source.on('SIGINT', handler);
  try {
    return await fn(controller.signal);
  } finally {
    source.removeListener('SIGINT', handler);
  }
}

/** Where the CLI's signals arrive: the process, or an EventEmitter in tests. */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: () => void): unknown;
  removeListener(event: NodeJS.Signals, listener: () => void): unknown;
}

export interface HeldSignals {
  /** Aborted by SIGTERM or SIGHUP: end the child, then clean up. */
  readonly signal: AbortSignal;
  /** The first of those received, if any. */
  readonly received: NodeJS.Signals | null;
  release(): void;
}

/**
 * While a terminal session and its clean-up run: Ctrl-C does not end the CLI (the terminal delivers it to ssh,
 * which owns it), and SIGTERM or SIGHUP abort `signal` instead of killing the CLI, so it can end its child and
 * still clean up.
 */
export function holdSignals(source: SignalSource): HeldSignals {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const ignore = (): void => undefined;
  const terminate = (name: NodeJS.Signals) => (): void => {
    received ??= name;
    controller.abort();
  };
  const onTerm = terminate('SIGTERM');
  const onHup = terminate('SIGHUP');
  source.on('SIGINT', ignore);
  source.on('SIGTERM', onTerm);
  source.on('SIGHUP', onHup);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    release() {
      source.removeListener('SIGINT', ignore);
      source.removeListener('SIGTERM', onTerm);
      source.removeListener('SIGHUP', onHup);
    },
  };
}

/** The exit status of a process ended by `name`: 128 plus its number (143 for SIGTERM, 129 for SIGHUP). */
export function signalExitStatus(name: NodeJS.Signals): number {
  return 128 + (os.constants.signals[name] ?? 1);
}
