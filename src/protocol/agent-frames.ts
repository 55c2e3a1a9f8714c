// The guest agent's wire format (agent/PROTOCOL.md): magic, header length, payload length, a JSON header and
// raw payload bytes. Shared by bangerd's agent client and the daemon's tunnel socket, which relays the same
// frames between a CLI and a guest.

export const AGENT_PROTOCOL_VERSION = 1;
export const FRAME_MAGIC = Buffer.from([0xb4, 0x6e, 0x67, 0x31]);
export const MAX_HEADER_BYTES = 65536;
export const MAX_PAYLOAD_BYTES = 65536;
/** Unacknowledged bytes a sender may have in flight per stream and direction. */
export const STREAM_WINDOW_BYTES = 262144;
const PREFIX_BYTES = 12;

export interface FrameHeader {
  t: string;
  id: number;
  [field: string]: unknown;
}

export interface Frame {
  header: FrameHeader;
  payload: Buffer;
}

export function encodeFrame(header: FrameHeader, payload: Buffer = EMPTY): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  if (json.length > MAX_HEADER_BYTES) throw new Error(`agent frame header of ${json.length} bytes is over ${MAX_HEADER_BYTES}`);
  if (payload.length > MAX_PAYLOAD_BYTES) throw new Error(`agent frame payload of ${payload.length} bytes is over ${MAX_PAYLOAD_BYTES}`);
  const prefix = Buffer.alloc(PREFIX_BYTES);
  FRAME_MAGIC.copy(prefix, 0);
  prefix.writeUInt32BE(json.length, 4);
  prefix.writeUInt32BE(payload.length, 8);
  return Buffer.concat([prefix, json, payload]);
}

const EMPTY = Buffer.alloc(0);

/**
 * Cuts a byte stream into frames. Bytes that do not start a valid frame are skipped one at a time until the
 * magic is found again: a connection to a virtio-serial port can begin with the tail of a frame the guest
 * wrote for an earlier connection. `skipped` counts what was thrown away, for logs.
 */
export class FrameReader {
  private buffer: Buffer = EMPTY;
  skipped = 0;

  push(chunk: Buffer): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Frame[] = [];
    for (;;) {
      const start = this.buffer.indexOf(FRAME_MAGIC);
      if (start < 0) {
        // Keep a possible partial magic at the end.
        const keep = Math.min(this.buffer.length, FRAME_MAGIC.length - 1);
        this.skipped += this.buffer.length - keep;
        this.buffer = this.buffer.subarray(this.buffer.length - keep);
        return frames;
      }
      if (start > 0) {
        this.skipped += start;
        this.buffer = this.buffer.subarray(start);
      }
      if (this.buffer.length < PREFIX_BYTES) return frames;
      const headerLength = this.buffer.readUInt32BE(4);
      const payloadLength = this.buffer.readUInt32BE(8);
      if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || payloadLength > MAX_PAYLOAD_BYTES) {
        this.skipOne();
        continue;
      }
      const total = PREFIX_BYTES + headerLength + payloadLength;
      if (this.buffer.length < total) return frames;
      const header = parseHeader(this.buffer.subarray(PREFIX_BYTES, PREFIX_BYTES + headerLength));
      if (!header) {
        this.skipOne();
        continue;
      }
      // Copied so the frame does not pin the whole receive buffer.
      frames.push({ header, payload: Buffer.from(this.buffer.subarray(PREFIX_BYTES + headerLength, total)) });
      this.buffer = this.buffer.subarray(total);
    }
  }

  /** Forgets a partial frame: the peer went away and the next bytes belong to a new conversation. */
  reset(): void {
    this.buffer = EMPTY;
  }

  private skipOne(): void {
    this.skipped += 1;
    this.buffer = this.buffer.subarray(1);
  }
}

function parseHeader(bytes: Buffer): FrameHeader | null {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const h = value as Record<string, unknown>;
  if (typeof h.t !== 'string' || !Number.isInteger(h.id) || (h.id as number) < 0 || (h.id as number) >= 2 ** 31) return null;
  return h as FrameHeader;
}

/** Payloads at most MAX_PAYLOAD_BYTES long, for sending a chunk of any size as data frames. */
export function* payloadChunks(data: Buffer): Generator<Buffer> {
  for (let off = 0; off < data.length; off += MAX_PAYLOAD_BYTES) yield data.subarray(off, off + MAX_PAYLOAD_BYTES);
}
