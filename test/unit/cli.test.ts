// splitGuestCommand lives in src/cli/main.ts, which runs main() when imported, so it is not tested here.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createParams } from '../../src/cli/commands/vm-create.ts';
import { describeVm } from '../../src/cli/commands/vm-list.ts';
import { formatBytes, progressPrinter, reportError, table, type Output } from '../../src/cli/output.ts';
import { BangerError, ERROR_CODES, exitCodeFor, isErrorCode, type ErrorCode } from '../../src/protocol/errors.ts';
import type { VmInfo } from '../../src/protocol/methods.ts';
import { fails } from '../fakes/expect-error.ts';

/** An Output that keeps what was printed. */
function captureOutput(): Output & { outLines: string[]; errLines: string[] } {
  const outLines: string[] = [];
  const errLines: string[] = [];
  return { outLines, errLines, out: (t) => outLines.push(t), err: (t) => errLines.push(t) };
}

const invalid = (pattern: RegExp) => fails('INVALID_ARGUMENT', pattern);

describe('createParams', () => {
  it('passes nothing for flags not given', () => {
    assert.deepEqual(createParams({}), {});
  });

  it('reads memory as MiB from plain numbers, M and G suffixes', () => {
    assert.equal(createParams({ memory: '2048' }).memoryMib, 2048);
    assert.equal(createParams({ memory: '512M' }).memoryMib, 512);
    assert.equal(createParams({ memory: '512m' }).memoryMib, 512);
    assert.equal(createParams({ memory: '512MiB' }).memoryMib, 512);
    assert.equal(createParams({ memory: '2G' }).memoryMib, 2048);
    assert.equal(createParams({ memory: '2g' }).memoryMib, 2048);
    assert.equal(createParams({ memory: '3GiB' }).memoryMib, 3072);
    assert.equal(createParams({ memory: '1GB' }).memoryMib, 1024);
  });

  it('reads the disk as GiB from a plain number or a G suffix', () => {
    assert.equal(createParams({ disk: '8' }).diskGib, 8);
    assert.equal(createParams({ disk: '8G' }).diskGib, 8);
    assert.equal(createParams({ disk: '16GiB' }).diskGib, 16);
  });

  it('passes name, image, cpus and ssh timeout through', () => {
    assert.deepEqual(createParams({ name: 'web', image: 'debian-bookworm', cpus: '4', sshTimeout: '30', memory: '1G', disk: '4' }), {
      name: 'web', image: 'debian-bookworm', vcpus: 4, memoryMib: 1024, diskGib: 4, sshTimeoutSec: 30,
    });
  });

  for (const memory of ['', 'lots', '2T', '1.5G', '-1', '2 GB extra', 'G']) {
    it(`refuses --memory ${JSON.stringify(memory)}`, () => {
      assert.throws(() => createParams({ memory }), invalid(/--memory/));
    });
  }

  for (const disk of ['', '8M', '1.5', 'big', '-8', '8T']) {
    it(`refuses --disk ${JSON.stringify(disk)}`, () => {
      assert.throws(() => createParams({ disk }), invalid(/--disk/));
    });
  }

  for (const [flag, value] of [['cpus', 'two'], ['cpus', '1.5'], ['cpus', '-1'], ['sshTimeout', '10s'], ['sshTimeout', '']] as const) {
    it(`refuses --${flag} ${JSON.stringify(value)}`, () => {
      assert.throws(() => createParams({ [flag]: value }), invalid(flag === 'cpus' ? /--cpus/ : /--ssh-timeout/));
    });
  }
});

describe('table', () => {
  it('aligns columns, prints empty cells as "-", and does not pad the last column', () => {
    const text = table(['NAME', 'STATE', 'IP'], [['web', 'running', '172.30.0.2'], ['a-longer-name', null, ''], ['x', 'stopped', 7]]);
    assert.equal(text, [
      'NAME           STATE    IP',
      'web            running  172.30.0.2',
      'a-longer-name  -        -',
      'x              stopped  7',
    ].join('\n'));
  });

  it('prints just the header for no rows', () => {
    assert.equal(table(['NAME', 'STATE'], []), 'NAME  STATE');
  });
});

describe('reportError', () => {
  it('prints the message and hint of a BangerError and returns its documented exit code', () => {
    const out = captureOutput();
    const status = reportError(out, new BangerError('VM_NOT_FOUND', 'no VM named "x"', { hint: 'see banger vm list' }));
    assert.equal(status, 3);
    assert.deepEqual(out.errLines, ['banger: no VM named "x"', 'hint: see banger vm list']);
    assert.deepEqual(out.outLines, []);
  });

  it('prints no hint line when there is none', () => {
    const out = captureOutput();
    assert.equal(reportError(out, new BangerError('INVALID_ARGUMENT', 'bad')), 2);
    assert.deepEqual(out.errLines, ['banger: bad']);
  });

  it('maps each code to its own exit status', () => {
    const expected: Array<[ErrorCode, number]> = [['INVALID_ARGUMENT', 2], ['VM_NOT_FOUND', 3], ['VM_NAME_TAKEN', 4], ['SSH_TIMEOUT', 11], ['CANCELLED', 130], ['INTERNAL', 70]];
    for (const [code, status] of expected) assert.equal(reportError(captureOutput(), new BangerError(code, 'x')), status, code);
    const statuses: number[] = Object.values(ERROR_CODES);
    assert.equal(new Set(statuses).size, statuses.length, 'no two codes share an exit status');
    assert.ok(!statuses.includes(0) && !statuses.includes(1), 'no code uses 0 or 1');
    for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) assert.equal(exitCodeFor(code), ERROR_CODES[code]);
  });

  it('reports an unexpected error with status 70 and a hint to the stack and the daemon log', () => {
    withEnv({ BANGER_DEBUG: undefined }, () => {
      const out = captureOutput();
      assert.equal(reportError(out, new Error('kaput'), { logDir: '/st/logs' }), 70);
      assert.deepEqual(out.errLines, ['banger: unexpected error: kaput', 'hint: rerun with BANGER_DEBUG=1 for a stack trace; see the daemon log at /st/logs/bangerd.log']);
      const other = captureOutput();
      assert.equal(reportError(other, 'a string', { logDir: '/st/logs' }), 70);
      assert.equal(other.errLines[0], 'banger: unexpected error: a string');
    });
  });

  it('with BANGER_DEBUG prints the stack of an unexpected error and does not suggest it again', () => {
    withEnv({ BANGER_DEBUG: '1' }, () => {
      const out = captureOutput();
      reportError(out, new Error('kaput'), { logDir: '/st/logs' });
      assert.match(out.errLines[0]!, /^banger: unexpected error: Error: kaput\n +at /);
      assert.equal(out.errLines[1], 'hint: see the daemon log at /st/logs/bangerd.log');
    });
  });

  it('finds the daemon log under BANGER_HOME when not told where it is', () => {
    withEnv({ BANGER_HOME: '/bh', BANGER_DEBUG: undefined }, () => {
      const out = captureOutput();
      reportError(out, new Error('kaput'));
      assert.match(out.errLines[1]!, /see the daemon log at \/bh\/state\/logs\/bangerd\.log$/);
    });
  });

  it('gives INTERNAL and HELPER_REFUSED errors without a hint of their own one that says where to look', () => {
    const internal = captureOutput();
    assert.equal(reportError(internal, new BangerError('INTERNAL', 'ip link add dev bgt1 failed (2): RTNETLINK answers: File exists'), { logDir: '/st/logs' }), 70);
    assert.equal(internal.errLines[0], 'banger: ip link add dev bgt1 failed (2): RTNETLINK answers: File exists');
    assert.match(internal.errLines[1]!, /^hint: .*daemon log.*: \/st\/logs\/bangerd\.log$/);

    const refused = captureOutput();
    assert.equal(reportError(refused, new BangerError('HELPER_REFUSED', 'bangerd-root refused: disk 0 /x is outside banger\'s directories'), { logDir: '/st/logs' }), 14);
    assert.match(refused.errLines[1]!, /^hint: .*BANGER_HOME.*banger daemon stop && banger daemon start.*\/st\/logs\/bangerd-root\.log$/);

    const own = captureOutput();
    reportError(own, new BangerError('HELPER_REFUSED', 'refused', { hint: 'its own hint' }), { logDir: '/st/logs' });
    assert.deepEqual(own.errLines, ['banger: refused', 'hint: its own hint']);
  });

  it('prints what an error wraps, and the subject when given', () => {
    const out = captureOutput();
    const err = new BangerError('NETWORK_FAILED', 'cannot create tap bgt1', { cause: new Error('ip tuntap add failed (1): Operation not permitted') });
    reportError(out, err, { subject: 'web' });
    assert.deepEqual(out.errLines, ['banger: web: cannot create tap bgt1: ip tuntap add failed (1): Operation not permitted']);
  });
});

/** Runs `fn` with these environment variables set (undefined: unset), then restores them. */
function withEnv(vars: Record<string, string | undefined>, fn: () => void): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>): void => {
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  apply(vars);
  try {
    fn();
  } finally {
    apply(saved);
  }
}
