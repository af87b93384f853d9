/** DNS over TCP: each message is preceded by its length in two bytes (RFC 1035 §4.2.2). */

export function frame(message: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(message.length);
  return Buffer.concat([length, message]);
}

/** Collects a stream's chunks and hands out whole messages. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** The messages completed by `chunk`, in order. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Buffer[] = [];
    while (this.pending.length >= 2) {
      const length = this.pending.readUInt16BE(0);
      if (this.pending.length < 2 + length) break;
      messages.push(this.pending.subarray(2, 2 + length));
      this.pending = this.pending.subarray(2 + length);
    }
    return messages;
  }

  /** Length announced by the message being received, if its two length bytes have come. */
  get announced(): number | undefined {
    return this.pending.length >= 2 ? this.pending.readUInt16BE(0) : undefined;
  }
}
