import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitForAll } from '../../src/daemon/services/guest-ready.ts';
import type { CallContext } from '../../src/protocol/jsonrpc.ts';

function ctx(signal = new AbortController().signal): CallContext {
  return { signal, progress: () => undefined };
}

/** A wait that ends when told to, or fails with CANCELLED when its context is aborted. */
function controlled(): { wait: (c: CallContext) => Promise<void>; started: () => boolean; finish: () => void; sawAbort: () => boolean } {
  let started = false;
  let aborted = false;
  let finish = (): void => undefined;
  return {
    wait: (c) => new Promise<void>((resolve, reject) => {
      started = true;
      finish = resolve;
      c.signal.addEventListener('abort', () => {
        aborted = true;
        reject(new Error('CANCELLED'));
      });
    }),
    started: () => started,
    finish: () => finish(),
    sawAbort: () => aborted,
  };
}

test('waitForAll starts every wait at once and returns when all have ended', async () => {
  const a = controlled();
  const b = controlled();
  let done = false;
  const all = waitForAll(ctx(), [a.wait, b.wait]).then(() => (done = true));
  await Promise.resolve();
  assert.ok(a.started() && b.started(), 'the second wait started before the first ended');
  a.finish();
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false);
  b.finish();
  await all;
  assert.equal(done, true);
});

test('the first failure cancels the other waits, and is the error thrown', async () => {
  const slow = controlled();
  const failing = async (): Promise<void> => {
    await Promise.resolve();
    throw new Error('agent: VMM_FAILED');
  };
  await assert.rejects(waitForAll(ctx(), [slow.wait, failing]), /agent: VMM_FAILED/);
  assert.equal(slow.sawAbort(), true);
});

test("the caller's cancel reaches every wait", async () => {
  const outer = new AbortController();
  const a = controlled();
  const b = controlled();
  const all = waitForAll(ctx(outer.signal), [a.wait, b.wait]);
  outer.abort();
  await assert.rejects(all, /CANCELLED/);
  assert.ok(a.sawAbort() && b.sawAbort());
});
