// Splits a byte stream into lines with a cap on a line's length, for newline-delimited JSON from a peer that
// may never send the newline. Chunks are kept as they came and joined once per line, and only new bytes are
// searched for the newline, so a long line costs O(length), not O(length²).

export interface SplitResult {
  lines: string[];
  tooLarge: boolean;
}

export class LineSplitter {
  readonly maxBytes: number;
  private parts: Buffer[] = [];
  private size = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /**
   * The lines `chunk` completes (without their newlines), in order. Once the unfinished line passes maxBytes it
   * reports tooLarge, with the lines before it, and forgets what it held; the caller should stop reading.
   */
  push(chunk: Buffer): SplitResult {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      const piece = chunk.subarray(start, nl);
      if (this.size + piece.length > this.maxBytes) return this.overflow(lines);
      // A newline byte never occurs inside a multi-byte UTF-8 character, so each line decodes on its own.
      lines.push((this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece])).toString('utf8'));
      this.clear();
      start = nl + 1;
    }
    const rest = chunk.length - start;
    if (this.size + rest > this.maxBytes) return this.overflow(lines);
    if (rest > 0) {
      // A copy when it is a tail, so a few bytes do not keep a whole chunk alive.
      this.parts.push(start === 0 ? chunk : Buffer.from(chunk.subarray(start)));
      this.size += rest;
    }
    return { lines, tooLarge: false };
  }

  /** Drops the unfinished line. */
  clear(): void {
    this.parts = [];
    this.size = 0;
  }

  private overflow(lines: string[]): SplitResult {
    this.clear();
    return { lines, tooLarge: true };
  }
}
