/**
 * `tskvm/vitest`: guest tests in vitest. `kvmTest` is vitest's `test` with two fixtures — `kvm`
 * (automatic: the test is skipped, with the reason, where /dev/kvm is unusable, and fails instead
 * under TSKVM_REQUIRE_KVM=1) and `guest` (start guests with the test's AbortSignal; every one is
 * stopped and waited for when the test ends, however it ends) — `kvmDescribe` does the same for a
 * whole suite, and the matchers `toExitWith`, `toCrash` and `toHaveSerialOutput` say how a run
 * ended and what it printed when they fail. Works in the forks, threads and vmThreads pools.
 *
 *   import { kvmTest } from 'tskvm/vitest';
 *   kvmTest('greets', async ({ guest, expect }) => {
 *     const run = await guest.start({ image });
 *     await run.console.expect('name? ');
 *     run.console.write('Ada\n');
 *     await expect(run).toExitWith(3);
 *   });
 */
import { beforeAll, describe, expect, test, type TestAPI } from 'vitest';
import { GuestScope } from './guest-scope.js';
import { kvmGate, kvmStatus, type KvmStatus } from './kvm.js';
import { checkCrash, checkExitWith, checkSerialOutput, isRunHandle, isThenable, type Verdict } from './matchers.js';

export { GuestScope, type TestGuestRun } from './guest-scope.js';
export { kvmGate, kvmRequired, kvmStatus, type KvmGate, type KvmStatus } from './kvm.js';

export interface KvmFixtures {
  /** This host's KVM (always usable inside a test that runs: elsewhere the test was skipped or failed first). */
  kvm: KvmStatus;
  /** The test's guests: `start()` and `run()` take startGuest's options; all are stopped when the test ends. */
  guest: GuestScope;
}

/** vitest's `test` for tests that boot guests. Chain as `test`: kvmTest.skip, .only, .each, .fails, .extend... */
export const kvmTest: TestAPI<KvmFixtures> = test.extend<KvmFixtures>({
  kvm: [
    async ({ skip }, use) => {
      const gate = kvmGate();
      if (gate.action === 'fail') throw new Error(gate.reason);
      if (gate.action === 'skip') skip(gate.reason);
      await use(kvmStatus());
    },
    { auto: true },
  ],
  guest: async ({ signal, kvm: _usable }, use) => {
    const scope = new GuestScope(signal);
    try {
      await use(scope);
    } finally {
      await scope.close();
    }
  },
});

/** Reasons already printed by kvmDescribe in this file (once each is enough). */
const announced = new Set<string>();

/**
 * describe() for suites that boot guests (in hooks or tests): skipped as a whole where /dev/kvm is
 * unusable (the reason goes to stderr once, as vitest has no note for a skipped suite); under
 * TSKVM_REQUIRE_KVM=1 every test in it fails instead, with the reason.
 */
export function kvmDescribe(name: string, factory: () => void | Promise<void>, options?: { timeout?: number }): void {
  const gate = kvmGate();
  if (gate.action === 'skip') {
    if (!announced.has(gate.reason)) {
      announced.add(gate.reason);
      console.warn(`tskvm: skipping the suites that boot guests: ${gate.reason}`);
    }
    describe.skip(name, factory);
    return;
  }
  describe(name, options ?? {}, () => {
    if (gate.action === 'fail') {
      beforeAll(() => {
        throw new Error(gate.reason);
      });
    }
    return factory();
  });
}

/** A matcher's verdict in vitest's shape (`message` for whichever of the check and `.not` failed). */
function toMatcherResult(verdict: Verdict, isNot: boolean): { pass: boolean; message: () => string } {
  return { pass: verdict.pass, message: () => (isNot ? verdict.negatedFailure : verdict.failure) };
}

/** A result as is; a run's handle or a promise of a result: awaited (the matcher is then async). */
function settled<T>(received: unknown, check: (result: unknown) => T): T | Promise<T> {
  if (isRunHandle(received)) return Promise.resolve(received.result).then(check);
  if (isThenable(received)) return Promise.resolve(received).then(check);
  return check(received);
}

expect.extend({
  toExitWith(received: unknown, code: number) {
    return settled(received, (result) => toMatcherResult(checkExitWith(result, code), this.isNot));
  },
  toCrash(received: unknown, description?: string | RegExp) {
    return settled(received, (result) => toMatcherResult(checkCrash(result, description), this.isNot));
  },
  toHaveSerialOutput(received: unknown, expected: string | RegExp) {
    // A handle or console: the output so far (now, not at the end); a promise: its result's.
    if (isThenable(received)) return Promise.resolve(received).then((r) => toMatcherResult(checkSerialOutput(r, expected), this.isNot));
    return toMatcherResult(checkSerialOutput(received, expected), this.isNot);
  },
});

/** A matcher on a result (or a handle's or console's output) is synchronous; on a promise or a handle's end, awaited. */
export type Settles<T, Async> = T extends PromiseLike<unknown> ? Promise<void> : Async extends true ? Promise<void> : void;
/** Whether T is a run's handle (something with a `result` promise). */
export type IsHandle<T> = T extends { readonly result: PromiseLike<unknown> } ? true : false;

declare module 'vitest' {
  /** tskvm's matchers, on vitest's expect(). */
  interface Assertion<T> {
    /** The run ended by a debug-exit write of `code`. On a handle or a promise: `await expect(run).toExitWith(0)`. */
    toExitWith(code: number): Settles<T, IsHandle<T>>;
    /** The run ended in a crash (triple fault, KVM internal error...), its description containing or matching `description`. */
    toCrash(description?: string | RegExp): Settles<T, IsHandle<T>>;
    /** COM1's output (a result's; a handle's or console's so far) contains the string or matches the RegExp. */
    toHaveSerialOutput(expected: string | RegExp): Settles<T, false>;
  }
}
