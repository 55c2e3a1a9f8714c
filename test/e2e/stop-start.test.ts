// End to end: what a fast vm stop (guest sync through the agent, then QEMU quits, no guest shutdown) and a fast
// boot must not cost: a file written just before vm stop is there after vm start, and the guest's clock agrees
// with the host's after every boot. The real CLI, daemons, QEMU and default image, in a network namespace this
// file creates and deletes, with a fresh BANGER_HOME.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { e2eBanger } from './e2e-banger.ts';

const NETNS = `banger-e2e-stop-${process.pid}`;
const { banger, ok, vmmProcesses, teardown } = e2eBanger('banger-e2e-stop-', NETNS);
const VM = 'e2e-stop';

/** Seconds between the host's clock and the guest's, from one `date` in the guest bracketed by two on the host. */
function clockSkewSeconds(): number {
  const before = Date.now() / 1000;
  const guest = Number(ok(['vm', 'exec', VM, '--', 'date', '+%s.%N']).stdout.trim());
  const after = Date.now() / 1000;
  assert.ok(Number.isFinite(guest), 'the guest printed a time');
  // Inside the bracket the skew is 0; outside it, the distance to the nearer end.
  return guest < before ? before - guest : guest > after ? guest - after : 0;
}

describe('vm stop keeps what was written; every boot has the right time', { timeout: 30 * 60_000 }, () => {
  before(() => {
    assert.equal(os.userInfo().uid, 0, 'the e2e tests need root (network namespace, taps, debootstrap)');
    const add = spawnSync('ip', ['netns', 'add', NETNS], { encoding: 'utf8' });
    assert.equal(add.status, 0, `ip netns add ${NETNS}: ${add.stderr}`);
  });

  after(() => {
    banger(['vm', 'delete', VM]);
    teardown();
    spawnSync('ip', ['netns', 'del', NETNS]);
  });

  test('the guest clock is right after the first boot', () => {
    ok(['vm', 'create', '--name', VM]);
    const skew = clockSkewSeconds();
    assert.ok(skew < 2, `guest clock is ${skew.toFixed(1)} s off the host's`);
  });

  test('files written right before vm stop, on the root and the work disk, are there after vm start', () => {
    // No sync of our own: vm stop must do it. 8 MiB of random data, so a lost page shows in the checksum.
    const write = [
      'head -c 8388608 /dev/urandom > /root/written-work',
      'head -c 8388608 /dev/urandom > /var/tmp/written-root',
      'echo small > /root/small',
      'sha256sum /root/written-work /var/tmp/written-root /root/small',
    ].join(' && ');
    const sums = ok(['vm', 'exec', VM, '--', 'sh', '-c', write]).stdout;
    ok(['vm', 'stop', VM]);
    assert.deepEqual(vmmProcesses(), [], 'no VMM after stop');
    ok(['vm', 'start', VM]);
    const again = ok(['vm', 'exec', VM, '--', 'sha256sum', '/root/written-work', '/var/tmp/written-root', '/root/small']).stdout;
    assert.equal(again, sums);
  });

  test('the guest clock is right after vm start', () => {
    const skew = clockSkewSeconds();
    assert.ok(skew < 2, `guest clock is ${skew.toFixed(1)} s off the host's after vm start`);
  });
});
