/** Length-prefixed DNS messages over a stream that splits and joins them arbitrarily. */
import { FrameReader, frame } from '../../../src/dns/tcp-frames';

describe('FrameReader', () => {
  it('reassembles messages split across chunks and separates messages sharing one', () => {
    const a = Buffer.from('first message');
    const b = Buffer.from('second');
    const stream = Buffer.concat([frame(a), frame(b), frame(a)]);
    const reader = new FrameReader();
    const got: string[] = [];
    for (let i = 0; i < stream.length; i += 5) got.push(...reader.push(stream.subarray(i, i + 5)).map(String));
    expect(got).toEqual(['first message', 'second', 'first message']);
  });

  it('tells the announced length before the message has come', () => {
    const reader = new FrameReader();
    expect(reader.announced).toBeUndefined();
    expect(reader.push(Buffer.from([0x10, 0x00, 1, 2]))).toEqual([]);
    expect(reader.announced).toBe(4096);
  });
});
