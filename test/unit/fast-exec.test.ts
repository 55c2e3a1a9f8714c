import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fastExecArgs } from '../../src/cli/fast-exec.ts';

describe('the vm exec fast path', () => {
  it('takes a plain agent exec, with or without --via agent', () => {
    assert.deepEqual(fastExecArgs(['vm', 'exec', 'web', '--', 'make', '-j2'], false), { vm: 'web', command: ['make', '-j2'] });
    assert.deepEqual(fastExecArgs(['vm', 'exec', '--via', 'agent', 'web', '--', 'true'], true), { vm: 'web', command: ['true'] });
    assert.deepEqual(fastExecArgs(['vm', 'exec', 'web', '--via=agent', '--', '--help'], false), { vm: 'web', command: ['--help'] });
  });

  it('leaves everything else to the full CLI: a terminal, ssh, other flags, help, no command', () => {
    assert.equal(fastExecArgs(['vm', 'exec', 'web', '--', 'true'], true), null, 'a terminal goes to ssh');
    assert.equal(fastExecArgs(['vm', 'exec', '--via', 'ssh', 'web', '--', 'true'], false), null);
    assert.equal(fastExecArgs(['vm', 'exec', '--via', 'telnet', 'web', '--', 'true'], false), null, 'the full CLI explains a bad --via');
    assert.equal(fastExecArgs(['vm', 'exec', '--help', '--', 'true'], false), null);
    assert.equal(fastExecArgs(['vm', 'exec', 'web', '--json', '--', 'true'], false), null);
    assert.equal(fastExecArgs(['vm', 'exec', 'web', '--'], false), null);
    assert.equal(fastExecArgs(['vm', 'exec', 'web', 'true'], false), null);
    assert.equal(fastExecArgs(['vm', 'run', '--', 'true'], false), null);
    assert.equal(fastExecArgs(['vm', 'exec', 'a', 'b', '--', 'true'], false), null);
  });
});
