/**
 * The serial bridge's output pump (issue 14's tscdeadline_latency finding): a burst the guest
 * writes one byte per exit reaches the sink in few chunks, in order and complete; finish() and
 * abandon() cut the coalescing wait short. No assertion depends on how long anything takes.
 */
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
