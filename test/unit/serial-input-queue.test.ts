/**
 * A serial port's input queue without KVM: the caller's input first, then pushes, in order; a
 * paused reader pauses a Readable source and resume() carries on without losing a byte; the
 * source's EOF ends nothing; close() stops everything. Then a SerialBridge reading one: the RX
 * ring full pauses the source, room resumes it, and every byte reaches the ring in order.
 */
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SERIAL_RX_RING_SIZE, SerialBridge } from '../../src/io/serial-bridge.js';
import { SerialInputQueue } from '../../src/io/serial-input-queue.js';

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const text = (chunks: Uint8Array[]): string => Buffer.concat(chunks).toString();

describe('SerialInputQueue', () => {
  it('delivers the initial string, then pushes, in order, never during subscribe()', async () => {
    const queue = new SerialInputQueue('first ');
    queue.push('second ');
    const got: Uint8Array[] = [];
    queue.subscribe((chunk) => got.push(chunk));
    queue.push('third'); // while the first delivery is pending: behind it
    expect(got).toEqual([]);
    await turn();
    expect(text(got)).toBe('first second third');
    queue.push(new Uint8Array([0x21]));
    queue.push(''); // nothing to deliver
    expect(text(got)).toBe('first second third!');
    expect(got).toHaveLength(4);
  });

  it('takes a failing source as the end of its input, before close() and after: the process does not crash', async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    const got: Uint8Array[] = [];
    queue.subscribe((chunk) => got.push(chunk));
    source.write('before ');
    await turn();
    expect(() => source.emit('error', new Error('EIO'))).not.toThrow();
    queue.push('typed');
    queue.close();
    expect(() => source.emit('error', new Error('EIO again'))).not.toThrow();
    expect(text(got)).toBe('before typed');
  });

  it("feeds a Readable source's data, then pushes; the source's EOF ends nothing", async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    const got: Uint8Array[] = [];
    queue.subscribe((chunk) => got.push(chunk));
    source.end('from stdin ');
    await turn();
    queue.push('typed');
    await turn();
    expect(text(got)).toBe('from stdin typed');
  });

  it('pauses a Readable source while a reader is paused, and resumes it without losing a byte', async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    const got: Uint8Array[] = [];
    const reader = queue.subscribe((chunk) => got.push(chunk));
    await turn();
    expect(source.isPaused()).toBe(false);
    source.write('a');
    await turn();
    reader.pause();
    expect(source.isPaused()).toBe(true);
    source.write('b'); // waits in the source
    queue.push('c'); // waits in the queue, behind nothing the source has emitted
    await turn();
    expect(text(got)).toBe('a');
    reader.resume();
    expect(source.isPaused()).toBe(false);
    await turn();
    expect(text(got)).toBe('acb');
  });

  it('holds chunks back while any reader is paused, and a stopped reader no longer counts', async () => {
    const queue = new SerialInputQueue();
    const one: Uint8Array[] = [];
    const two: Uint8Array[] = [];
    const first = queue.subscribe((chunk) => one.push(chunk));
    const second = queue.subscribe((chunk) => two.push(chunk));
    second.pause();
    queue.push('x');
    await turn();
    expect([text(one), text(two)]).toEqual(['', '']);
    second.stop();
    await turn();
    expect([text(one), text(two)]).toEqual(['x', '']);
    first.stop();
    queue.push('y'); // no reader: it waits
    const three: Uint8Array[] = [];
    queue.subscribe((chunk) => three.push(chunk));
    await turn();
    expect(text(three)).toBe('y');
  });

  it('pauses the source when its last reader stops', async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    const reader = queue.subscribe(() => {});
    await turn();
    reader.stop();
    expect(source.isPaused()).toBe(true);
  });

  it('close() stops input: nothing more is delivered, and the source is let go, paused', async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    const got: Uint8Array[] = [];
    const reader = queue.subscribe((chunk) => got.push(chunk));
    reader.pause();
    queue.push('dropped');
    queue.close();
    expect(source.listenerCount('data')).toBe(0);
    expect(source.isPaused()).toBe(true);
    reader.resume();
    queue.push('late');
    source.write('late too');
    await turn();
    expect(got).toEqual([]);
  });

  it('does not touch a source until it has a reader', async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    await turn();
    expect(source.listenerCount('data')).toBe(0);
    queue.close();
    expect(source.listenerCount('data')).toBe(0);
  });
});

describe('SerialBridge reading a SerialInputQueue', () => {
  it('pauses the source while the RX ring is full and resumes it when there is room, losing nothing', async () => {
    const source = new PassThrough();
    const queue = new SerialInputQueue(source);
    const bridge = new SerialBridge(() => {}, queue);
    const sent = Buffer.alloc(SERIAL_RX_RING_SIZE * 3);
    for (let i = 0; i < sent.length; i++) sent[i] = (i * 7 + (i >> 10)) & 0xff;
    source.write(sent);
    await turn();
    queue.push('end'); // typed while the ring is full: after the source's bytes
    expect(bridge.rx.used()).toBe(SERIAL_RX_RING_SIZE);
    expect(source.isPaused()).toBe(true);
    const received: Buffer[] = [];
    while (Buffer.concat(received).length < sent.length + 3) {
      received.push(bridge.rx.read(SERIAL_RX_RING_SIZE / 4)); // the guest reads a bit
      await turn();
    }
    expect(Buffer.concat(received).equals(Buffer.concat([sent, Buffer.from('end')]))).toBe(true);
    expect(source.isPaused()).toBe(false);
    await bridge.finish();
    expect(source.isPaused()).toBe(true); // the bridge's stop paused it, through the queue
  });
});
