import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFrame, FrameReader, FRAME_MAGIC, MAX_PAYLOAD_BYTES, payloadChunks } from '../../src/protocol/agent-frames.ts';

describe('agent frames', () => {
  it('round-trips header and payload, also when the bytes arrive one at a time', () => {
    const bytes = Buffer.concat([
      encodeFrame({ t: 'hello', id: 1, version: 1, nonce: 'n' }),
      encodeFrame({ t: 'data', id: 7, ch: 'stdout' }, Buffer.from([0, 1, 2, 255])),
    ]);
    const reader = new FrameReader();
    const frames = [];
    for (const byte of bytes) frames.push(...reader.push(Buffer.from([byte])));
    assert.deepEqual(frames.map((f) => f.header), [{ t: 'hello', id: 1, version: 1, nonce: 'n' }, { t: 'data', id: 7, ch: 'stdout' }]);
    assert.deepEqual([...frames[1]!.payload], [0, 1, 2, 255]);
    assert.equal(reader.skipped, 0);
  });

  it('skips the tail of an earlier frame, bad lengths and non-object headers, then reads the next good frame', () => {
    const good = encodeFrame({ t: 'ok', id: 3, r: {} });
    const badLength = Buffer.concat([FRAME_MAGIC, Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])]);
    const arrayHeader = Buffer.concat([FRAME_MAGIC, Buffer.from([0, 0, 0, 2, 0, 0, 0, 0]), Buffer.from('[]')]);
    const reader = new FrameReader();
    const frames = reader.push(Buffer.concat([Buffer.from('tail of a payload'), badLength, arrayHeader, good]));
    assert.deepEqual(frames.map((f) => f.header), [{ t: 'ok', id: 3, r: {} }]);
    assert.ok(reader.skipped > 0);
  });

  it('refuses a header without a type or with a negative id', () => {
    const reader = new FrameReader();
    const noType = encodeFrame({ t: 'x', id: 1 }).toString('latin1').replace('"t":"x"', '"q":"x"');
    assert.deepEqual(reader.push(Buffer.from(noType, 'latin1')), []);
    assert.throws(() => encodeFrame({ t: 'data', id: 1 }, Buffer.alloc(MAX_PAYLOAD_BYTES + 1)), /payload/);
  });

  it('forgets a partial frame on reset', () => {
    const reader = new FrameReader();
    const frame = encodeFrame({ t: 'ok', id: 1 });
    assert.deepEqual(reader.push(frame.subarray(0, 10)), []);
    reader.reset();
    assert.deepEqual(reader.push(encodeFrame({ t: 'ok', id: 2 })).map((f) => f.header.id), [2]);
  });

  it('cuts data into payloads of at most the maximum', () => {
    const sizes = [...payloadChunks(Buffer.alloc(MAX_PAYLOAD_BYTES * 2 + 5))].map((c) => c.length);
    assert.deepEqual(sizes, [MAX_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES, 5]);
  });
});
