/**
 * eventLoopHasWork (src/vcpu/caller-thread.ts, over the addon's loopHasWork): whether an exit
 * loop on the caller's thread should give the event loop a turn between slices. It must say yes
 * for each kind of work a turn would do — a timer due, a message or I/O waiting on an fd,
 * immediates queued — and no when there is none, or the exit loop gains nothing.
 */
import { readFile } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/kvm/native.js';
import { eventLoopHasWork } from '../../src/vcpu/caller-thread.js';

/** Busy for `ms` on this thread, as a slice of guest time is. */
function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/** The answer from inside an immediate, the pass of the event loop where the exit loop resumes after its turn. */
const inImmediate = (ask: () => boolean): Promise<boolean> => new Promise((resolve) => setImmediate(() => resolve(ask())));

describe.skipIf(native().loopHasWork === undefined)("the caller's-thread exit loop's question to its event loop", () => {
  it('says no when nothing waits (at least once in a few passes: V8 may post a task of its own)', async () => {
    const answers: boolean[] = [];
    for (let i = 0; i < 5; i++) answers.push(await inImmediate(eventLoopHasWork));
    expect(answers).toContain(false);
  });

  it('says no for a timer still to come, yes for one that has come due', async () => {
    const later = setTimeout(() => {}, 60_000);
    try {
      const answers: boolean[] = [];
      for (let i = 0; i < 5; i++) answers.push(await inImmediate(eventLoopHasWork));
      expect(answers).toContain(false);
      const due = await inImmediate(() => {
        const soon = setTimeout(() => {}, 1);
        spin(5);
        const answer = eventLoopHasWork();
        clearTimeout(soon);
        return answer;
      });
      expect(due).toBe(true);
    } finally {
      clearTimeout(later);
    }
  });

  it('says yes for a message waiting on a port', async () => {
    const { port1, port2 } = new MessageChannel();
    const received = new Promise((resolve) => port1.once('message', resolve));
    try {
      const waiting = await inImmediate(() => {
        port2.postMessage('hello');
        return eventLoopHasWork();
      });
      expect(waiting).toBe(true);
      await received;
    } finally {
      port1.close();
    }
  });

  it('says yes once a thread-pool read has completed', async () => {
    const done = new Promise<void>((resolve) => readFile(fileURLToPath(import.meta.url), () => resolve()));
    // The read completes in the pool while this thread spins; its callback then waits on an fd.
    const waiting = await inImmediate(() => {
      const end = performance.now() + 5_000;
      let answer = false;
      while (!answer && performance.now() < end) answer = eventLoopHasWork();
      return answer;
    });
    expect(waiting).toBe(true);
    await done;
  });

  it('says yes for an immediate queued in the pass it runs in, which the backend alone cannot see', async () => {
    const answer = await inImmediate(() => {
      setImmediate(() => {});
      return eventLoopHasWork();
    });
    expect(answer).toBe(true);
  });
});
