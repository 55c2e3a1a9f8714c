// Waiting for a booting guest: its agent and its sshd come up independently, so banger waits for both at once
// instead of one after the other (sshd used to be tried only once the agent had answered, about a second later
// than it could have been on a TCG boot).
import type { CallContext } from '../../protocol/jsonrpc.ts';

export type GuestWait = (ctx: CallContext) => Promise<void>;

/**
 * Runs the waits side by side. The first to fail stops the others (they see their context cancelled), and its
 * error is the one thrown, once every wait has ended: nothing keeps polling after this returns.
 */
export async function waitForAll(ctx: CallContext, waits: readonly GuestWait[]): Promise<void> {
  const inner = new AbortController();
  const forward = (): void => inner.abort(ctx.signal.reason);
  if (ctx.signal.aborted) forward();
  else ctx.signal.addEventListener('abort', forward, { once: true });
  const child: CallContext = { signal: inner.signal, progress: (event) => ctx.progress(event) };
  let failure: { error: unknown } | null = null;
  try {
    await Promise.allSettled(waits.map(async (wait) => {
      try {
        await wait(child);
      } catch (error) {
        failure ??= { error };
        inner.abort();
      }
    }));
  } finally {
    ctx.signal.removeEventListener('abort', forward);
  }
  if (failure) throw (failure as { error: unknown }).error;
}
