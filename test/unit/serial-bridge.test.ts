/**
 * The serial bridge's output pump (issue 14's tscdeadline_latency finding): a burst the guest
 * writes one byte per exit reaches the sink in few chunks, in order and complete; finish() and
 * abandon() cut the coalescing wait short. Then input handed to the bridge itself (the BIOS's keys).
 * No assertion depends on how long anything takes.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SerialBridge } from '../../src/io/serial-bridge.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('SerialBridge output', () => {
  it('delivers a byte-by-byte burst whole and in order, in fewer chunks than bytes', async () => {
    const chunks: Buffer[] = [];
    const bridge = new SerialBridge((chunk) => void chunks.push(chunk));
    const text = 'latency: 123456\n'.repeat(20);
    for (const byte of Buffer.from(text)) {
      bridge.tx.push(byte);
      await turn(); // one exit per byte: the pump gets a chance between them
    }
    await bridge.finish();
    expect(Buffer.concat(chunks).toString()).toBe(text);
    expect(chunks.length).toBeLessThan(text.length);
  });

  it('hands over what it was collecting when finish() comes during the wait', async () => {
    const chunks: Buffer[] = [];
    const bridge = new SerialBridge((chunk) => void chunks.push(chunk));
    bridge.tx.push(0x41);
    await turn();
    bridge.tx.push(0x42);
    await bridge.finish();
    expect(Buffer.concat(chunks).toString()).toBe('AB');
  });

  it('drops what it was collecting on abandon(), and its pump ends', async () => {
    const chunks: Buffer[] = [];
    const bridge = new SerialBridge((chunk) => void chunks.push(chunk));
    bridge.tx.push(0x41);
    await turn();
    bridge.abandon();
    await bridge.finish();
    expect(chunks).toEqual([]);
  });
});

// Input given straight to the bridge, as the BIOS gives its keys: a string, bytes or a stream.
describe('SerialBridge input given directly', () => {
  it('puts a string or bytes in the RX ring before the constructor returns', () => {
    expect(new SerialBridge(() => {}, 'keys').rx.read().toString()).toBe('keys');
    expect(Array.from(new SerialBridge(() => {}, new Uint8Array([1, 2, 3])).rx.read())).toEqual([1, 2, 3]);
  });

  it('reads a stream into the RX ring, survives its error, and lets it go at finish()', async () => {
    const source = new PassThrough();
    const bridge = new SerialBridge(() => {}, source);
    source.write('abc');
    await turn();
    expect(() => source.emit('error', new Error('EIO'))).not.toThrow();
    expect(bridge.rx.read().toString()).toBe('abc');
    await bridge.finish();
    expect(source.listenerCount('data')).toBe(0);
    source.write('late');
    await turn();
    expect(bridge.rx.used()).toBe(0);
  });
});
