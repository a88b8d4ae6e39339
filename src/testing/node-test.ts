/**
 * `tskvm/node-test`: guest tests with Node's own runner (node:test), no other dependency.
 * `kvmTest` and `kvmDescribe` skip with the reason where /dev/kvm is unusable and fail instead
 * under TSKVM_REQUIRE_KVM=1; `kvmTest` hands the test a GuestScope whose guests get the test's
 * AbortSignal and are all stopped and waited for when the test ends. The assertions say how a run
 * ended and what it printed when they fail.
 *
 *   import { kvmTest, assertExitWith } from 'tskvm/node-test';
 *   kvmTest('greets', async (t, guest) => {
 *     const run = await guest.start({ image });
 *     await run.console.expect('name? ');
 *     run.console.write('Ada\n');
 *     assertExitWith(await run.result, 3);
 *   });
 */
import { AssertionError } from 'node:assert';
import { before, describe, test, type SuiteContext, type TestContext, type TestOptions } from 'node:test';
import { GuestScope } from './guest-scope.js';
import { kvmGate } from './kvm.js';
import { checkCrash, checkExitWith, checkSerialOutput, type Verdict } from './matchers.js';

export { GuestScope, type TestGuestRun } from './guest-scope.js';
export { kvmGate, kvmRequired, kvmStatus, type KvmGate, type KvmStatus } from './kvm.js';

export type KvmTestFn = (t: TestContext, guest: GuestScope) => void | Promise<void>;

/** node:test's test() for a test that boots guests: `guest.start(options)` / `guest.run(options)`. */
export function kvmTest(name: string, fn: KvmTestFn): Promise<void>;
export function kvmTest(name: string, options: TestOptions, fn: KvmTestFn): Promise<void>;
export function kvmTest(name: string, optionsOrFn: TestOptions | KvmTestFn, maybeFn?: KvmTestFn): Promise<void> {
  const [options, fn] = typeof optionsOrFn === 'function' ? [{}, optionsOrFn] : [optionsOrFn, maybeFn];
  if (!fn) throw new TypeError(`kvmTest('${name}'): the test function is missing`);
  const gate = kvmGate();
  if (gate.action === 'skip') return test(name, { ...options, skip: gate.reason }, () => {});
  return test(name, options, async (t) => {
    if (gate.action === 'fail') throw new Error(gate.reason);
    const scope = new GuestScope(t.signal);
    try {
      await fn(t, scope);
    } finally {
      await scope.close();
    }
  });
}

/** node:test's describe() for a suite that boots guests (in hooks or tests). */
export function kvmDescribe(name: string, fn: (s: SuiteContext) => void | Promise<void>, options: TestOptions = {}): Promise<void> {
  const gate = kvmGate();
  if (gate.action === 'skip') return describe(name, { ...options, skip: gate.reason }, fn);
  return describe(name, options, (s) => {
    if (gate.action === 'fail') {
      before(() => {
        throw new Error(gate.reason);
      });
    }
    return fn(s);
  });
}

/** The message says it all (how the run ended, its last output): no actual/expected dump of a whole result. */
function assertVerdict(verdict: Verdict, operator: string): void {
  if (!verdict.pass) throw new AssertionError({ message: verdict.failure, operator });
}

/** The run ended by a debug-exit write of `code`. */
export function assertExitWith(result: unknown, code: number): void {
  assertVerdict(checkExitWith(result, code), 'exitWith');
}

/** The run crashed (triple fault, KVM internal error, failed entry), its description containing or matching `description`. */
export function assertCrash(result: unknown, description?: string | RegExp): void {
  assertVerdict(checkCrash(result, description), 'crash');
}

/** The output (a result's COM1, a console's or handle's so far, or a string) contains `expected` or matches it. */
export function assertSerialOutput(received: unknown, expected: string | RegExp): void {
  assertVerdict(checkSerialOutput(received, expected), 'serialOutput');
}
