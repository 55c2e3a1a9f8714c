// The accelerator decision of a create or start, and the spec line that announces the VM: the line goes out
// first, with the accelerator when it is decided soon enough, while the work goes on behind it.
import type { CallContext, ProgressEvent } from '../../protocol/jsonrpc.ts';
import type { KernelInfo } from '../../protocol/methods.ts';
import type { Clock } from '../../system/clock.ts';
import type { AccelChoice, VmmDriver } from '../../vmm/driver.ts';
import { accelText } from './vm-spec.ts';

/** The accelerator decision of one create or start: known at once, or under way; `shown` once the user saw it. */
export interface Accel {
  known: AccelChoice | null;
  decided: Promise<AccelChoice>;
  shown: boolean;
}

/** What the spec line needs from the VM service. */
export interface Announcer {
  driverName: string;
  clock: Clock;
}

/** How long the spec line waits for an accelerator decision under way before it goes out without one. */
const SPEC_GRACE_MS = 1_500;

/**
 * The accelerator decision: known at once (and then in the spec line), or started now and awaited at boot. A
 * decision that fails before anyone awaits it is still reported by whoever awaits it.
 */
export function accelFor(driver: Pick<VmmDriver, 'knownAccel' | 'selectAccel'>, kernel: KernelInfo, fresh: boolean, signal: AbortSignal): Accel {
  // Asked even when a fresh decision is wanted: it reports a missing QEMU or an unusable forced KVM at once.
  const remembered = driver.knownAccel(kernel);
  const known = fresh ? null : remembered;
  const decided = known ? Promise.resolve(known) : driver.selectAccel(kernel, { signal, fresh });
  decided.catch(() => undefined);
  return { known, decided, shown: known !== null };
}

/**
 * Prints the spec line first, with the accelerator when it is decided within SPEC_GRACE_MS (a probe that fails
 * at once, or a fast KVM boot); the work goes on meanwhile and its progress is held back until the line is out.
 * Returns the context the rest of the operation reports through.
 */
export function announceSpec(ctx: CallContext, accel: Accel, o: Announcer, line: (accelText: string) => string): { ctx: CallContext; flush(): void } {
  const held: ProgressEvent[] = [];
  let released = false;
  const release = (choice: AccelChoice | null): void => {
    if (released) return;
    released = true;
    accel.shown = choice !== null;
    ctx.progress({ stage: 'spec', message: line(accelText(o.driverName, choice)) });
    for (const event of held.splice(0)) ctx.progress(event);
  };
  if (accel.known) release(accel.known);
  else {
    const grace = new AbortController();
    void o.clock.sleep(SPEC_GRACE_MS, grace.signal).then(() => release(null));
    accel.decided.then((choice) => release(choice), () => release(null)).finally(() => grace.abort());
  }
  return {
    ctx: {
      signal: ctx.signal,
      progress: (event) => {
        if (released) ctx.progress(event);
        else held.push(event);
      },
    },
    // The operation ends before the decision: out goes the line without it, then what was held.
    flush: () => release(null),
  };
}
