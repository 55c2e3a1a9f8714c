import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LineSplitter } from '../../src/protocol/line-splitter.ts';

describe('LineSplitter', () => {
  it('returns the lines a chunk completes and keeps the rest for the next chunk', () => {
    const s = new LineSplitter(100);
    assert.deepEqual(s.push(Buffer.from('one\ntw')), { lines: ['one'], tooLarge: false });
    assert.deepEqual(s.push(Buffer.from('o')), { lines: [], tooLarge: false });
    assert.deepEqual(s.push(Buffer.from('\nthree\n\nfour')), { lines: ['two', 'three', ''], tooLarge: false });
    assert.deepEqual(s.push(Buffer.from('\n')), { lines: ['four'], tooLarge: false });
  });

  it('decodes a character whose bytes arrive in different chunks', () => {
    const s = new LineSplitter(100);
    const bytes = Buffer.from('ünï\n');
    const lines = [...bytes].flatMap((b) => s.push(Buffer.from([b])).lines);
    assert.deepEqual(lines, ['ünï']);
  });

  it('reports a line past the limit, with the lines before it, and forgets it', () => {
    const s = new LineSplitter(10);
    assert.deepEqual(s.push(Buffer.from('0123456789\n01234')), { lines: ['0123456789'], tooLarge: false });
    assert.deepEqual(s.push(Buffer.from('56789X')), { lines: [], tooLarge: true });
    // What it held is gone: a fresh line is read from scratch.
    assert.deepEqual(s.push(Buffer.from('ok\n')), { lines: ['ok'], tooLarge: false });
    assert.deepEqual(s.push(Buffer.from('a\n01234567890\n')), { lines: ['a'], tooLarge: true });
  });
});
