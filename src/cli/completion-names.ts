// Live VM, image and kernel names for shell completion, from bangerd when it answers at once. Completion runs at
// every TAB: it never starts a daemon, never waits long, and has nothing to say when bangerd does not answer.
import type { BangerClient } from '../sdk/client.ts';
import { systemClock, type Clock } from '../system/clock.ts';
import type { LiveKind } from './completion-engine.ts';

/** How long a TAB may wait for bangerd before it offers no names. */
export const LIVE_NAMES_BOUND_MS = 1000;

export interface LiveNamesOptions {
  /** bangerd's socket; the SDK's default (BANGER_HOME's, or the default one) when not given. */
  socketPath?: string;
  clock?: Clock;
  boundMs?: number;
}

/** The names bangerd has of `kind`; none when it is not running or does not answer within the bound. */
export async function liveNames(kind: LiveKind, options: LiveNamesOptions = {}): Promise<string[]> {
  const clock = options.clock ?? systemClock;
  const done = new AbortController();
  let client: BangerClient | null = null;
  let gaveUp = false;
  const ask = async (): Promise<string[]> => {
    const { connect } = await import('../sdk/client.ts');
    const connected = await connect({ autoStart: false, ...(options.socketPath ? { socketPath: options.socketPath } : {}) });
    if (gaveUp) {
      connected.destroy();
      return [];
    }
    client = connected;
    return namesOf(connected, kind, done.signal);
  };
  const answer = ask().catch(() => []);
  const bound = clock.sleep(options.boundMs ?? LIVE_NAMES_BOUND_MS, done.signal).then(() => null);
  try {
    return (await Promise.race([answer, bound])) ?? [];
  } finally {
    gaveUp = true;
    done.abort();
    // Not close(), which waits for bangerd to hang up: one that does not answer would keep this process alive.
    (client as BangerClient | null)?.destroy();
  }
}

async function namesOf(client: BangerClient, kind: LiveKind, signal: AbortSignal): Promise<string[]> {
  switch (kind) {
    case 'vms':
      return (await client.call('vm.list', {}, { signal })).map((vm) => vm.name);
    case 'images':
      return (await client.call('image.list', {}, { signal })).map((image) => image.name);
    case 'kernels':
      return (await client.call('kernel.list', {}, { signal })).map((kernel) => kernel.id);
  }
}
