import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SingleFlight, pollUntil } from '../../src/system/clock.ts';
import { FakeClock } from '../fakes/fake-clock.ts';
import { fails } from '../fakes/expect-error.ts';

describe('pollUntil', () => {
  test('returns the first defined value', async () => {
    const clock = new FakeClock();
    let n = 0;
    const got = await pollUntil(() => (++n === 3 ? 'ready' : undefined), { clock, timeoutMs: 10_000, intervalMs: 250 });
    assert.equal(got, 'ready');
    assert.deepEqual(clock.sleeps, [250, 250]);
  });

  test('gives up at the deadline, after a last attempt', async () => {
    const clock = new FakeClock();
    const t0 = clock.now();
    let attempts = 0;
    const got = await pollUntil(() => {
      attempts++;
      return undefined;
    }, { clock, timeoutMs: 1000, intervalMs: 300 });
    assert.equal(got, undefined);
    assert.equal(clock.now() - t0, 1000);
    assert.equal(attempts, 5);
  });

  test('a fired signal ends it with CANCELLED', async () => {
    const clock = new FakeClock();
    const controller = new AbortController();
    let n = 0;
    await assert.rejects(
      pollUntil(() => {
        if (++n === 2) controller.abort();
        return undefined;
      }, { clock, timeoutMs: 10_000, intervalMs: 100, signal: controller.signal }),
      fails('CANCELLED'),
    );
  });
});

describe('SingleFlight', () => {
  test('callers asking at once share one run; a later call runs again', async () => {
    const flight = new SingleFlight<string, number>();
    let runs = 0;
    let release!: (v: number) => void;
    const work = (): Promise<number> => {
      runs++;
      return new Promise((resolve) => {
        release = resolve;
      });
    };
    const a = flight.run('k', work);
    const b = flight.run('k', work);
    assert.equal(flight.has('k'), true);
    release(7);
    assert.deepEqual(await Promise.all([a, b]), [7, 7]);
    assert.equal(runs, 1);
    assert.equal(flight.has('k'), false);
    const c = flight.run('k', work);
    release(8);
    assert.equal(await c, 8);
    assert.equal(runs, 2);
  });
});
