/**
 * The guests one test starts, tied to that test's life: each gets the test's AbortSignal (a test
 * that times out or is cancelled stops its guests at once), and when the test ends — passed,
 * failed, timed out — every guest it started is stopped and waited for, so no VM, vCPU thread or
 * fd outlives its test. tskvm/vitest's `guest` fixture and tskvm/node-test's helper are this.
 */
import { UsageError } from '../errors.js';
import type { SerialConsole } from '../io/serial-console.js';
import type { RunGuestOptions } from '../machine/options.js';
import type { RunResult } from '../machine/result.js';
import { startGuest, type GuestRun } from '../machine/run.js';

/** How long the end of a test waits for a guest it stopped (a stop takes milliseconds; this is for a wedged host). */
export const STOP_WAIT_MS = 10_000;

/** A run started from a test: a GuestRun whose `console` is COM1's, never undefined (it throws where COM1 is unconnected). */
export interface TestGuestRun extends Omit<GuestRun, 'console'> {
  /** COM1's console: write() to type, expect() to wait for output. */
  readonly console: SerialConsole;
}

export class GuestScope {
  private readonly started: GuestRun[] = [];
  private readonly starting = new Set<Promise<GuestRun>>();
  private closed = false;

  /** `signal`: the test's; aborting it stops every guest started here. */
  constructor(private readonly signal?: AbortSignal) {}

  /** The guests started so far (stopped or not). */
  get runs(): readonly GuestRun[] {
    return this.started;
  }

  /** startGuest with the test's signal (and the caller's own, if any): the guest stops when the test ends. */
  async start(options: RunGuestOptions): Promise<TestGuestRun> {
    if (this.closed) throw new UsageError('this test has ended: start guests from inside the test, not after it');
    const signal = options.signal && this.signal ? eitherSignal(this.signal, options.signal) : (options.signal ?? this.signal);
    const pending = startGuest({ ...options, ...(signal ? { signal } : {}) });
    this.starting.add(pending);
    let run: GuestRun;
    try {
      run = await pending;
    } finally {
      this.starting.delete(pending);
    }
    this.started.push(run);
    if (this.closed) run.stop(); // the test ended while the guest was starting
    return withConsole(run);
  }

  /** Starts a guest and waits for its end. */
  async run(options: RunGuestOptions): Promise<RunResult> {
    return (await this.start(options)).result;
  }

  /**
   * The test has ended: stops every guest it started (and any still starting) and waits for each
   * run to finish. Rejects if one has not ended within STOP_WAIT_MS.
   */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.starting].map((pending) => pending.catch(() => undefined)));
    const stuck: number[] = [];
    await Promise.all(
      this.started.map(async (run, i) => {
        run.stop();
        if (!(await endsWithin(run.result, STOP_WAIT_MS))) stuck.push(i);
      }),
    );
    if (stuck.length > 0) {
      throw new Error(
        `${stuck.length} guest(s) started by this test did not stop within ${STOP_WAIT_MS} ms of its end (runs ${stuck.join(', ')})`,
      );
    }
  }
}

/** Aborts when either does (AbortSignal.any, which Node has only from 20.3). */
function eitherSignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const both = new AbortController();
  for (const signal of [a, b]) {
    if (signal.aborted) both.abort(signal.reason);
    else signal.addEventListener('abort', () => both.abort(signal.reason), { once: true });
  }
  return both.signal;
}

/** Whether `result` settles (either way: a run that failed has ended too) within `ms`. */
function endsWithin(result: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    result.then(done, done);
  });
}

/** The handle, with `console` that names the problem instead of being undefined. */
function withConsole(run: GuestRun): TestGuestRun {
  return Object.create(run, {
    console: {
      enumerable: true,
      get(): SerialConsole {
        const console = run.console;
        if (!console) {
          throw new UsageError('COM1 is connected to nothing in this run (options.serialPorts leaves it out): use run.consoles.COM2 etc.');
        }
        return console;
      },
    },
  }) as TestGuestRun;
}
