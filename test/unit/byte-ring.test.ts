import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { ByteRing } from '../../src/io/byte-ring.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const distRing = path.join(root, 'dist', 'io', 'byte-ring.js');

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

/** Resolves with 'pending' if `p` has not settled after a few macrotasks. */
async function settled(p: Promise<unknown>, ms = 20): Promise<'settled' | 'pending'> {
  return Promise.race([p.then(() => 'settled' as const), new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);
}

describe('ByteRing: allocation', () => {
  it.each([0, -4, 3, 6, 100, 1000, 4097])('rejects capacity %d', (capacity) => {
    expect(() => ByteRing.allocate(capacity)).toThrow(RangeError);
    expect(() => ByteRing.allocate(capacity)).toThrow(`ring capacity ${capacity} is not a power of two`);
  });

  it.each([1, 2, 16, 4096, 65536])('accepts capacity %d', (capacity) => {
    const ring = ByteRing.allocate(capacity);
    expect(ring.capacity).toBe(capacity);
    expect(ring.used()).toBe(0);
    expect(ring.free()).toBe(capacity);
    expect(ring.buffer).toBeInstanceOf(SharedArrayBuffer);
  });

  it('a second ByteRing over the same buffer sees the same bytes', () => {
    const a = ByteRing.allocate(8);
    const b = new ByteRing(a.buffer);
    expect(b.capacity).toBe(8);
    a.write(bytes(1, 2, 3));
    expect(b.used()).toBe(3);
    expect(Array.from(b.read())).toEqual([1, 2, 3]);
    expect(a.used()).toBe(0);
  });
});

describe('ByteRing: single thread', () => {
  it('push and shift keep order; shift on empty is -1', () => {
    const ring = ByteRing.allocate(4);
    expect(ring.shift()).toBe(-1);
    expect(ring.push(0x10)).toBe(true);
    expect(ring.push(0x20)).toBe(true);
    expect(ring.push(0xff)).toBe(true);
    expect(ring.used()).toBe(3);
    expect(ring.free()).toBe(1);
    expect(ring.shift()).toBe(0x10);
    expect(ring.shift()).toBe(0x20);
    expect(ring.shift()).toBe(0xff);
    expect(ring.shift()).toBe(-1);
    expect(ring.used()).toBe(0);
  });

  it('a full ring rejects push and write returns a partial count', () => {
    const ring = ByteRing.allocate(8);
    expect(ring.write(bytes(1, 2, 3, 4, 5))).toBe(5);
    expect(ring.write(bytes(6, 7, 8, 9, 10))).toBe(3);
    expect(ring.used()).toBe(8);
    expect(ring.free()).toBe(0);
    expect(ring.push(11)).toBe(false);
    expect(ring.write(bytes(12))).toBe(0);
    expect(Array.from(ring.read())).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ring.push(13)).toBe(true);
    expect(ring.shift()).toBe(13);
  });

  it('write and read across the wrap-around point', () => {
    const ring = ByteRing.allocate(8);
    expect(ring.write(bytes(1, 2, 3, 4, 5, 6))).toBe(6);
    expect(Array.from(ring.read(5))).toEqual([1, 2, 3, 4, 5]);
    // head is at 6, tail at 5: this write wraps (2 bytes at the end, 4 at the start).
    expect(ring.write(bytes(10, 11, 12, 13, 14, 15))).toBe(6);
    expect(ring.used()).toBe(7);
    expect(ring.free()).toBe(1);
    // This read wraps too.
    expect(Array.from(ring.read(4))).toEqual([6, 10, 11, 12]);
    expect(Array.from(ring.read())).toEqual([13, 14, 15]);
    expect(ring.read().length).toBe(0);
  });

  it('read(max) takes at most max bytes and read() on empty returns an empty Buffer', () => {
    const ring = ByteRing.allocate(16);
    const empty = ring.read();
    expect(Buffer.isBuffer(empty)).toBe(true);
    expect(empty.length).toBe(0);
    ring.write(bytes(1, 2, 3));
    expect(Array.from(ring.read(2))).toEqual([1, 2]);
    expect(Array.from(ring.read(0))).toEqual([]);
    expect(ring.used()).toBe(1);
  });

  it('push and shift wrap correctly', () => {
    const ring = ByteRing.allocate(2);
    for (let i = 0; i < 1000; i++) {
      expect(ring.push(i & 0xff)).toBe(true);
      expect(ring.push((i + 1) & 0xff)).toBe(true);
      expect(ring.push(0)).toBe(false);
      expect(ring.shift()).toBe(i & 0xff);
      expect(ring.shift()).toBe((i + 1) & 0xff);
    }
  });

  it('thousands of odd-sized writes and reads keep every byte in order', () => {
    const ring = ByteRing.allocate(64);
    let next = 0; // next byte value to write
    let expected = 0; // next byte value to read
    let total = 0;
    for (let cycle = 0; cycle < 5000; cycle++) {
      const want = ((cycle * 7) % 37) + 1;
      const chunk = new Uint8Array(want);
      for (let i = 0; i < want; i++) chunk[i] = (next + i) & 0xff;
      const free = ring.free();
      const n = ring.write(chunk);
      expect(n).toBe(Math.min(want, free));
      next += n;
      const got = ring.read(((cycle * 5) % 29) + 1);
      for (const b of got) {
        expect(b).toBe(expected & 0xff);
        expected++;
      }
      total += got.length;
      expect(ring.used()).toBe(next - expected);
    }
    for (const b of ring.read()) expect(b).toBe(expected++ & 0xff);
    expect(expected).toBe(next);
    expect(total).toBeGreaterThan(50_000);
  });
});

describe('ByteRing: waiting', () => {
  it('waitForData resolves at once when data is there', async () => {
    const ring = ByteRing.allocate(8);
    ring.push(1);
    expect(await settled(ring.waitForData())).toBe('settled');
  });

  it('waitForData waits for a later write', async () => {
    const ring = ByteRing.allocate(8);
    const waiting = ring.waitForData();
    expect(await settled(waiting)).toBe('pending');
    setTimeout(() => ring.write(bytes(42)), 10);
    await waiting;
    expect(ring.shift()).toBe(42);
  });

  it('waitForSpace resolves at once when there is room and waits when full', async () => {
    const ring = ByteRing.allocate(4);
    expect(await settled(ring.waitForSpace())).toBe('settled');
    ring.write(bytes(1, 2, 3, 4));
    const waiting = ring.waitForSpace();
    expect(await settled(waiting)).toBe('pending');
    setTimeout(() => ring.shift(), 10);
    await waiting;
    expect(ring.free()).toBe(1);
  });

  it("a wake from the waiter's own thread ends its wait within microtasks, with no turn of the event loop", async () => {
    const empty = ByteRing.allocate(4);
    const full = ByteRing.allocate(4);
    full.write(bytes(1, 2, 3, 4));
    let cancelled = false;
    const ended: string[] = [];
    const reading = empty.waitForData(() => cancelled).then(() => ended.push('reader'));
    const writing = full.waitForSpace(() => cancelled).then(() => ended.push('writer'));
    expect([await settled(reading), await settled(writing)]).toEqual(['pending', 'pending']);
    cancelled = true;
    empty.wakeReader();
    full.wakeWriter();
    // Atomics.notify alone settles a waitAsync of this thread only through an event-loop task.
    for (let i = 0; i < 10 && ended.length < 2; i++) await Promise.resolve();
    expect(ended.sort()).toEqual(['reader', 'writer']);
    await Promise.all([reading, writing]);
  });
});

describe('ByteRing: across worker threads', () => {
  const ready = existsSync(distRing);

  it('dist/io/byte-ring.js is built (npm run build:ts)', () => {
    expect(ready, `${distRing} is missing: run npm run build:ts`).toBe(true);
  });

  it.runIf(ready)(
    'a producer thread sends 100 KB through a small ring in order',
    async () => {
      const TOTAL = 100 * 1024;
      const ring = ByteRing.allocate(256);
      const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      // A pending Atomics.waitAsync does not keep a thread's event loop alive: hold it open.
      const keepAlive = setInterval(() => {}, 1 << 30);
      (async () => {
        const { ByteRing } = await import(workerData.url);
        const ring = new ByteRing(workerData.buffer);
        const total = workerData.total;
        let sent = 0;
        let waits = 0;
        while (sent < total) {
          const n = Math.min(97, total - sent);
          const chunk = new Uint8Array(n);
          for (let i = 0; i < n; i++) chunk[i] = ((sent + i) * 31 + ((sent + i) >> 8)) & 0xff;
          let off = 0;
          while (off < n) {
            const w = ring.write(chunk.subarray(off));
            off += w;
            if (off < n) { waits++; await ring.waitForSpace(); }
          }
          sent += n;
        }
        clearInterval(keepAlive);
        parentPort.postMessage({ sent, waits });
      })().catch((e) => { parentPort.postMessage({ error: String(e && e.stack || e) }); });
    `;
      const worker = new Worker(code, {
        eval: true,
        workerData: { buffer: ring.buffer, url: pathToFileURL(distRing).href, total: TOTAL },
      });
      const done = new Promise<{ sent: number; waits: number; error?: string }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      try {
        let received = 0;
        let reads = 0;
        while (received < TOTAL) {
          await ring.waitForData();
          // Read in small odd pieces so the producer has to wait for space now and then.
          const got = ring.read(61);
          reads++;
          for (let i = 0; i < got.length; i++) {
            const k = received + i;
            const want = (k * 31 + (k >> 8)) & 0xff;
            if (got[i] !== want) throw new Error(`byte ${k}: got ${got[i]}, want ${want}`);
          }
          received += got.length;
          if (reads % 50 === 0) await new Promise((r) => setTimeout(r, 1));
        }
        const result = await done;
        expect(result.error).toBeUndefined();
        expect(result.sent).toBe(TOTAL);
        expect(received).toBe(TOTAL);
        expect(ring.used()).toBe(0);
        // The consumer pauses while the ring is full, so the producer must have waited for space.
        expect(result.waits).toBeGreaterThan(0);
      } finally {
        await worker.terminate();
      }
    },
    20_000,
  );

  it.runIf(ready)(
    'a consumer awaiting waitForData is woken by a write from another thread',
    async () => {
      const ring = ByteRing.allocate(16);
      const waiting = ring.waitForData();
      expect(await settled(waiting)).toBe('pending');
      const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      import(workerData.url).then(({ ByteRing }) => {
        const ring = new ByteRing(workerData.buffer);
        setTimeout(() => { ring.write(Uint8Array.from([7, 8, 9])); parentPort.postMessage('written'); }, 20);
      });
    `;
      const worker = new Worker(code, { eval: true, workerData: { buffer: ring.buffer, url: pathToFileURL(distRing).href } });
      try {
        await waiting;
        expect(Array.from(ring.read())).toEqual([7, 8, 9]);
      } finally {
        await worker.terminate();
      }
    },
    20_000,
  );

  it.runIf(ready)(
    'a producer awaiting waitForSpace in another thread is woken when the consumer reads',
    async () => {
      const ring = ByteRing.allocate(4);
      ring.write(bytes(1, 2, 3, 4));
      const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      // A pending Atomics.waitAsync does not keep a thread's event loop alive: hold it open.
      const keepAlive = setInterval(() => {}, 1 << 30);
      import(workerData.url).then(async ({ ByteRing }) => {
        const ring = new ByteRing(workerData.buffer);
        parentPort.postMessage({ phase: 'waiting', free: ring.free() });
        await ring.waitForSpace();
        const free = ring.free();
        const n = ring.write(Uint8Array.from([5, 6]));
        parentPort.postMessage({ phase: 'wrote', free, n });
        clearInterval(keepAlive);
      });
    `;
      const worker = new Worker(code, { eval: true, workerData: { buffer: ring.buffer, url: pathToFileURL(distRing).href } });
      const messages: Array<{ phase: string; free: number; n?: number }> = [];
      let notify: (() => void) | undefined;
      worker.on('message', (m: { phase: string; free: number; n?: number }) => {
        messages.push(m);
        notify?.();
      });
      const next = (count: number): Promise<void> =>
        new Promise((resolve) => {
          const check = (): void => {
            if (messages.length >= count) resolve();
          };
          notify = check;
          check();
        });
      try {
        await next(1);
        expect(messages[0]).toEqual({ phase: 'waiting', free: 0 });
        // The producer is parked: nothing more arrives while the ring stays full.
        await new Promise((r) => setTimeout(r, 50));
        expect(messages.length).toBe(1);
        expect(ring.used()).toBe(4);
        expect(Array.from(ring.read(2))).toEqual([1, 2]);
        await next(2);
        expect(messages[1]).toEqual({ phase: 'wrote', free: 2, n: 2 });
        expect(Array.from(ring.read())).toEqual([3, 4, 5, 6]);
      } finally {
        await worker.terminate();
      }
    },
    20_000,
  );
});
