/**
 * close(2) of a VM fd off the calling thread. The last close destroys the VM, which takes the
 * kernel 15-25 ms once it has an irqchip: nobody waits for it. On the main thread libuv's thread
 * pool does it (fs.close). In a worker thread (a vitest `threads` pool) fs.close would warn "File
 * descriptor N closed but not opened in unmanaged mode" (Node tracks the fds a worker opens with
 * fs, and the backend opened this one), so there the backend closes it, in an idle vCPU thread
 * when the layer above has registered one (src/vcpu/thread.ts), else here once the caller has
 * moved on.
 */
import { close as fsClose } from 'node:fs';
import { createRequire } from 'node:module';
import type * as WorkerThreads from 'node:worker_threads';
import { native } from './native.js';

/** Closes an fd in another thread through the backend; undefined when no thread can take it now. */
export type ThreadCloser = (fd: number) => Promise<void> | undefined;

let threadCloser: ThreadCloser | undefined;

/** The vCPU threads register here (the kvm layer cannot reach up to them). */
export function setThreadCloser(closer: ThreadCloser): void {
  threadCloser = closer;
}

/** Closes `fd` without blocking the caller; the promise settles when it is closed (it never rejects: a failed close leaves nothing to do). */
export function closeInBackground(fd: number): Promise<void> {
  if (onMainThread()) return new Promise((resolve) => fsClose(fd, () => resolve()));
  const inThread = threadCloser?.(fd);
  if (inThread) return inThread;
  return new Promise((resolve) =>
    setImmediate(() => {
      native().close(fd);
      resolve();
    }),
  );
}

/** The backend knows without node:worker_threads, which a one-vCPU CLI run would load only for this. */
function onMainThread(): boolean {
  const ask = native().isMainThread;
  if (ask) return ask();
  const threads = createRequire(import.meta.url)('node:worker_threads') as typeof WorkerThreads;
  return threads.isMainThread;
}
