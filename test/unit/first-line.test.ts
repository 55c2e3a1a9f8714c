import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { FirstLineError, readFirstLine } from '../../src/protocol/first-line.ts';

describe('readFirstLine', () => {
  it('resolves with the line and leaves what followed it for the next reader, across chunks', async () => {
    const s = new PassThrough();
    const line = readFirstLine(s, 64);
    s.write('OK 10');
    s.write('73741824\nagent');
    s.write('-bytes');
    assert.equal((await line).toString(), 'OK 1073741824');
    const rest: Buffer[] = [];
    s.on('data', (c: Buffer) => rest.push(c));
    s.resume();
    s.end();
    await new Promise((resolve) => s.once('end', resolve));
    assert.equal(Buffer.concat(rest).toString(), 'agent-bytes');
  });

  it('refuses a line longer than the limit, and a stream that ends or fails first', async () => {
    const long = new PassThrough();
    const tooLong = readFirstLine(long, 4);
    long.write('12345');
    await assert.rejects(tooLong, (e: unknown) => e instanceof FirstLineError && e.reason === 'too-long');
    const closed = new PassThrough();
    const ended = readFirstLine(closed, 64);
    closed.end('no newline');
    await assert.rejects(ended, (e: unknown) => e instanceof FirstLineError && e.reason === 'closed');
    const broken = new PassThrough();
    const failed = readFirstLine(broken, 64);
    broken.destroy(new Error('reset'));
    await assert.rejects(failed, (e: unknown) => e instanceof FirstLineError && e.reason === 'failed' && /reset/.test(e.message));
  });
});
