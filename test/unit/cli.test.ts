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

  it('reports an unexpected error with status 70 and no hint', () => {
    const saved = process.env.BANGER_DEBUG;
    delete process.env.BANGER_DEBUG;
    try {
      const out = captureOutput();
      assert.equal(reportError(out, new Error('kaput')), 70);
      assert.deepEqual(out.errLines, ['banger: unexpected error: kaput']);
      const other = captureOutput();
      assert.equal(reportError(other, 'a string'), 70);
      assert.deepEqual(other.errLines, ['banger: unexpected error: a string']);
    } finally {
      if (saved !== undefined) process.env.BANGER_DEBUG = saved;
    }
  });
});

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
      diskGib: 8, ip: '172.30.0.2', mac: '52:54:00:89:ab:cd', tap: 'bgt0123456789ab', accel: 'tcg', pid: 42, createdAt: '2025-01-01T00:00:00.000Z',
    };
    assert.match(describeVm(vm), /^state: +running \(pid 42\)$/m);
    assert.match(describeVm({ ...vm, state: 'stopped', pid: null, accel: null }), /^state: +stopped$/m);
    assert.match(describeVm({ ...vm, accel: null }), /^accel: +-$/m);
  });
});
