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
  /** Whether a SIGINT (Ctrl-C) arrived since the hold began; it goes to ssh, but ssh may not report it as such. */
  readonly interrupted: boolean;
  release(): void;
}

/**
 * While a terminal session and its clean-up run: Ctrl-C does not end the CLI (the terminal delivers it to ssh,
 * which owns it; the CLI only notes it in `interrupted`), and SIGTERM or SIGHUP abort `signal` instead of
 * killing the CLI, so it can end its child and still clean up.
 */
export function holdSignals(source: SignalSource): HeldSignals {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  let interrupted = false;
  const onInt = (): void => {
    interrupted = true;
  };
  const terminate = (name: NodeJS.Signals) => (): void => {
    received ??= name;
    controller.abort();
  };
  const onTerm = terminate('SIGTERM');
  const onHup = terminate('SIGHUP');
  source.on('SIGINT', onInt);
  source.on('SIGTERM', onTerm);
  source.on('SIGHUP', onHup);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    get interrupted() {
      return interrupted;
    },
    release() {
      source.removeListener('SIGINT', onInt);
      source.removeListener('SIGTERM', onTerm);
      source.removeListener('SIGHUP', onHup);
    },
  };
}

/** The exit status of a process ended by `name`: 128 plus its number (143 for SIGTERM, 129 for SIGHUP). */
export function signalExitStatus(name: NodeJS.Signals): number {
  return 128 + (os.constants.signals[name] ?? 1);
}

/**
 * The exit status of a terminal session. SIGTERM or SIGHUP received by the CLI win (128 + their number). A Ctrl-C
 * that also killed ssh makes ssh exit 255, which would read as "ssh failed": report 130 instead. A status the
 * guest command returned through ssh (remote `exit 7`) is kept even after a Ctrl-C.
 */
export function sessionStatus(held: HeldSignals, sshStatus: number): number {
  if (held.received) return signalExitStatus(held.received);
  if (held.interrupted && sshStatus === SSH_FAILED) return signalExitStatus('SIGINT');
  return sshStatus;
}

/** What ssh exits with when it fails itself, or is killed by SIGINT while it waits for the remote side. */
export const SSH_FAILED = 255;
