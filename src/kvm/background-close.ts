/**
 * close(2) of a VM fd off the calling thread. The last close destroys the VM, which takes the
 * kernel 15-25 ms once it has an irqchip: nobody waits for it. On the main thread libuv's thread
 * pool does it (fs.close). In a worker thread (a vitest `threads` pool) fs.close would warn "File
 * descriptor N closed but not opened in unmanaged mode" (Node tracks the fds a worker opens with
 * fs, and the backend opened this one), so there the backend closes it, in an idle vCPU thread
 * when the layer above has registered one (src/vcpu/thread.ts), else here once the caller has
 * moved on.
 *
 * A process that exits once its guests have ended (the command lines: destroyVmsAfterExit) hands
 * the VM fd instead to a child that holds it until the process has exited (native/teardown.c):
 * otherwise the process's exit waits for the destruction, and so does whoever waits for the process.
 */
import { close as fsClose } from 'node:fs';
import { createRequire } from 'node:module';
import type * as WorkerThreads from 'node:worker_threads';
import { native } from './native.js';

/** Closes an fd in another thread through the backend; undefined when no thread can take it now. */
export type ThreadCloser = (fd: number) => Promise<void> | undefined;

let threadCloser: ThreadCloser | undefined;
let afterExit = false;
/** VMs handed over so far, and at most how many: a process that builds VM after VM must not keep them all. */
let handedOver = 0;
const MAX_HANDED_OVER = 4;

/** The vCPU threads register here (the kvm layer cannot reach up to them). */
export function setThreadCloser(closer: ThreadCloser): void {
  threadCloser = closer;
}

/**
 * From now on, this process's last close of a VM fd leaves the VM's destruction to the kernel
 * after this process has exited, where the backend can (the addon). For a process that ends when
 * its guests do: every VM closed before then stays allocated in the kernel until the process exits.
 */
export function destroyVmsAfterExit(): void {
  afterExit = true;
}

/**
 * For a process that exits once its guests have ended (destroyVmsAfterExit): hands `fd` to the
 * child that closes it after this process has exited, and closes it here. False (nothing done)
 * elsewhere, or when the backend cannot, or once MAX_HANDED_OVER VMs have gone so.
 */
export function closeAfterExit(fd: number): boolean {
  return afterExit && handOver(fd);
}

/** Closes `fd` without blocking the caller; the promise settles when it is closed (it never rejects: a failed close leaves nothing to do). */
export function closeInBackground(fd: number): Promise<void> {
  if (closeAfterExit(fd)) return Promise.resolve();
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

/** Hands `fd` to a child that closes it after this process's exit, and closes it here (cheap now); false when the backend cannot. */
function handOver(fd: number): boolean {
  if (handedOver >= MAX_HANDED_OVER) return false;
  const handed = native().destroyAfterExit?.([fd]);
  if (handed === undefined || handed < 0) return false;
  handedOver += 1;
  native().close(fd);
  return true;
}

/** The backend knows without node:worker_threads, which a one-vCPU CLI run would load only for this. */
function onMainThread(): boolean {
  const ask = native().isMainThread;
  if (ask) return ask();
  const threads = createRequire(import.meta.url)('node:worker_threads') as typeof WorkerThreads;
  return threads.isMainThread;
}
