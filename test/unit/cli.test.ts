import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createParams } from '../../src/cli/create-flags.ts';
import { describeVm } from '../../src/cli/describe-vm.ts';
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

  it('passes nat only when --nat is given', () => {
    assert.deepEqual(createParams({ nat: true }), { nat: true });
    assert.deepEqual(createParams({ nat: false }), {});
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

  it('asks for a fresh accelerator decision only with --fresh-accel', () => {
    assert.equal(createParams({ freshAccel: true }).freshAccel, true);
    assert.equal('freshAccel' in createParams({ freshAccel: false }), false);
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

  it('gives an error without a hint of its own one for its code, naming the command when known', () => {
    const out = captureOutput();
    assert.equal(reportError(out, new BangerError('INVALID_ARGUMENT', 'vcpus must be a whole number from 1 to 64 (got 0)'), { command: 'banger vm run' }), 2);
    assert.deepEqual(out.errLines, ['banger: vcpus must be a whole number from 1 to 64 (got 0)', 'hint: see banger vm run --help']);
    const unknown = captureOutput();
    reportError(unknown, new BangerError('INVALID_ARGUMENT', 'bad'));
    assert.equal(unknown.errLines[1], 'hint: see banger --help');
  });

  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    it(`prints a hint line for a ${code} error that has none, as text and as JSON`, () => {
      const text = captureOutput();
      assert.equal(reportError(text, new BangerError(code, 'it failed'), { logDir: '/st/logs', command: 'banger vm create' }), ERROR_CODES[code]);
      assert.equal(text.errLines.length, 2);
      assert.match(text.errLines[1]!, /^hint: \S.{10,}/);
      const json = captureOutput();
      reportError(json, new BangerError(code, 'it failed'), { logDir: '/st/logs', command: 'banger vm create', json: true });
      assert.equal(json.errLines.length, 1);
      const { error } = JSON.parse(json.errLines[0]!) as { error: { code: string; message: string; hint: string } };
      assert.equal(error.code, code);
      assert.equal(error.message, 'it failed');
      assert.equal(error.hint, text.errLines[1]!.slice('hint: '.length));
    });
  }

  it('takes the hint of a wrapped error before the one for the code', () => {
    const out = captureOutput();
    const tool = new BangerError('TOOL_FAILED', 'ip link set dev bgt1 up failed (exit status 1): Cannot find device', { hint: 'ip comes from apt-get install iproute2' });
    reportError(out, new BangerError('NETWORK_FAILED', 'cannot attach tap bgt1', { cause: tool }));
    assert.deepEqual(out.errLines, ['banger: cannot attach tap bgt1: ip link set dev bgt1 up failed (exit status 1): Cannot find device', 'hint: ip comes from apt-get install iproute2']);
  });

  it('with json prints one JSON object on stderr and nothing on stdout, with the same exit status', () => {
    const out = captureOutput();
    const status = reportError(out, new BangerError('VM_NOT_FOUND', 'no VM named "x"', { hint: 'see banger vm list' }), { json: true, subject: 'x' });
    assert.equal(status, 3);
    assert.deepEqual(out.outLines, []);
    assert.deepEqual(out.errLines.map((l) => JSON.parse(l)), [{ error: { code: 'VM_NOT_FOUND', message: 'x: no VM named "x"', hint: 'see banger vm list' } }]);
  });

  it('with json reports an unexpected error as INTERNAL, without a stack', () => {
    withEnv({ BANGER_DEBUG: '1' }, () => {
      const out = captureOutput();
      assert.equal(reportError(out, new Error('kaput'), { json: true, logDir: '/st/logs' }), 70);
      assert.deepEqual(JSON.parse(out.errLines[0]!), { error: { code: 'INTERNAL', message: 'unexpected error: kaput', hint: 'see the daemon log at /st/logs/bangerd.log' } });
    });
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
    reportError(out, err, { subject: 'web', logDir: '/st/logs' });
    assert.equal(out.errLines[0], 'banger: web: cannot create tap bgt1: ip tuntap add failed (1): Operation not permitted');
    assert.match(out.errLines[1]!, /^hint: see \/st\/logs\/bangerd-root\.log; restarting both daemons/);
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

describe('errors', () => {
  it('BangerError carries code and hint in its wire data only when set', () => {
    assert.deepEqual(new BangerError('VM_NOT_FOUND', 'm', { hint: 'h' }).toData(), { code: 'VM_NOT_FOUND', hint: 'h' });
    assert.deepEqual(new BangerError('VM_NOT_FOUND', 'm').toData(), { code: 'VM_NOT_FOUND' });
  });

  it('isErrorCode accepts only known codes', () => {
    assert.equal(isErrorCode('VM_NOT_FOUND'), true);
    assert.equal(isErrorCode('toString'), false);
    assert.equal(isErrorCode('NOPE'), false);
    assert.equal(isErrorCode(3), false);
  });
});

describe('progress and formatting', () => {
  it('prints the spec line plainly and other stages with their name', () => {
    const out = captureOutput();
    const print = progressPrinter(out);
    print({ stage: 'spec', message: 'web: 2 vCPU' });
    print({ stage: 'boot', message: 'starting qemu/tcg' });
    assert.equal(out.errLines[0], 'banger: web: 2 vCPU');
    assert.match(out.errLines[1]!, /^ +\d+\.\ds boot +starting qemu\/tcg$/);
    assert.deepEqual(out.outLines, []);
  });

  it('formats byte counts in binary units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1024), '1.0 KiB');
    assert.equal(formatBytes(1536 * 1024 * 1024), '1.5 GiB');
    assert.equal(formatBytes(3 * 1024 ** 5), '3072.0 TiB');
  });

  it('describeVm shows the pid only while there is one', () => {
    const vm: VmInfo = {
      id: '0123456789ab', name: 'web', state: 'running', image: 'debian-bookworm', kernel: 'host-6.1', vcpus: 2, memoryMib: 1024,
      diskGib: 8, ip: '172.30.0.2', mac: '52:54:00:89:ab:cd', tap: 'bgt0123456789ab', accel: 'tcg', pid: 42, createdAt: '2025-01-01T00:00:00.000Z', nat: false, workspace: null,
    };
    assert.match(describeVm(vm), /^state: +running \(pid 42\)$/m);
    assert.match(describeVm({ ...vm, state: 'stopped', pid: null, accel: null }), /^state: +stopped$/m);
    assert.match(describeVm({ ...vm, accel: null }), /^accel: +-$/m);
    assert.match(describeVm(vm), /^nat: +off/m);
    assert.match(describeVm({ ...vm, nat: true }), /^nat: +on/m);
  });
});
