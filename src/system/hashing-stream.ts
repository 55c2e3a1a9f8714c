// A pass-through stream that hashes (sha256) and counts what flows through it, for the places that verify or
// name data as they move it: layers as bangerd-root applies them, a rootfs tar into the blob cache, a bundle
// as it is written.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  /** Bytes seen so far. */
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    done(null, chunk);
  }

  /** The sha256 of everything seen, in hex; call once, after the stream ended. */
  hex(): string {
    return this.hash.digest('hex');
  }
}
