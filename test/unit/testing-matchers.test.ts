/**
 * tskvm/vitest's matchers and tskvm/node-test's assertions on made-up results (no KVM needed):
 * what passes, what fails, and that a failure says how the run really ended and what it printed.
 */
import { AssertionError } from 'node:assert';
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/machine/result.js';
import { assertCrash, assertExitWith, assertSerialOutput } from '../../src/testing/node-test.js';
import { checkExitWith, checkSerialOutput, outputTail } from '../../src/testing/matchers.js';
import '../../src/testing/vitest.js';

function result(fields: Partial<RunResult>): RunResult {
  const serial = fields.serial ?? '';
  return {
    reason: 'debug-exit',
    exitCode: 0,
    serial,
    serialBytes: Buffer.from(serial),
    durationMs: 12.3,
    exits: {} as RunResult['exits'],
    format: 'flat',
    notes: [],
    warnings: [],
    ...fields,
  };
}

const exited3 = result({ reason: 'debug-exit', exitCode: 3, serial: 'name? hello, Ada!\n' });
const timedOut = result({ reason: 'timeout', exitCode: 0, durationMs: 5000.4, serial: 'name? ' });
const crashed = result({ reason: 'crash', crash: { description: 'triple fault (KVM_EXIT_SHUTDOWN)', state: 'RIP=0x10' } });

function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected a failure');
}

describe('toExitWith', () => {
  it('passes on a debug-exit of that value only', () => {
    expect(exited3).toExitWith(3);
    expect(exited3).not.toExitWith(4);
    expect(timedOut).not.toExitWith(0); // a timeout's exit code 0 is not an exit
    expect(result({ exitCode: 0x1234 })).toExitWith(0x1234);
  });

  it('says how the run ended and what the guest printed last', () => {
    const message = failure(() => expect(timedOut).toExitWith(3));
    expect(message).toContain("expected the guest to exit with 3, but it ended with reason 'timeout' after 5000 ms");
    expect(message).toContain("COM1's output:\n  | name? ");
    expect(failure(() => expect(crashed).toExitWith(0))).toContain('a crash (triple fault (KVM_EXIT_SHUTDOWN))');
    expect(failure(() => expect(exited3).not.toExitWith(3))).toContain('expected the guest not to exit with 3, but it did');
  });

  it('awaits a promise of a result, or a handle’s result', async () => {
    await expect(Promise.resolve(exited3)).toExitWith(3);
    await expect({ result: Promise.resolve(exited3) }).toExitWith(3);
    await expect(expect({ result: Promise.resolve(timedOut) }).toExitWith(3)).rejects.toThrow(/reason 'timeout'/);
  });

  it('tells what to pass instead of something that is not a result', () => {
    expect(checkExitWith(42, 42)).toMatchObject({
      pass: false,
      failure: expect.stringMatching(/needs a run's result \(RunResult\), but got number 42/),
    });
    expect(failure(() => expect({ reason: 1 }).toExitWith(0))).toMatch(/needs a run's result/);
  });
});

describe('toCrash', () => {
  it('passes on a crash, its description containing or matching the argument', () => {
    expect(crashed).toCrash();
    expect(crashed).toCrash('triple fault');
    expect(crashed).toCrash(/KVM_EXIT_SHUTDOWN/);
    expect(crashed).not.toCrash('internal error');
    expect(exited3).not.toCrash();
  });

  it('shows the registers when a crash was not expected', () => {
    const message = failure(() => expect(crashed).not.toCrash());
    expect(message).toContain('expected the guest not to crash, but it ended with a crash (triple fault');
    expect(message).toContain('RIP=0x10');
    expect(failure(() => expect(exited3).toCrash())).toContain('expected the guest to crash, but it ended with a debug-exit write of 3');
  });
});

describe('toHaveSerialOutput', () => {
  it('looks in a result, a console, a handle’s console or a string', () => {
    expect(exited3).toHaveSerialOutput('hello, Ada');
    expect(exited3).toHaveSerialOutput(/hello, (\w+)!/);
    expect(exited3).not.toHaveSerialOutput('Grace');
    expect({ output: 'booted\n' }).toHaveSerialOutput('booted');
    expect({ result: new Promise(() => {}), console: { output: 'so far' } }).toHaveSerialOutput('so far');
    expect('plain text').toHaveSerialOutput(/plain/);
  });

  it('shows the output it looked in', () => {
    const message = failure(() => expect(timedOut).toHaveSerialOutput('hello'));
    expect(message).toContain('expected the serial output to contain "hello" (the run ended with reason \'timeout\' after 5000 ms)');
    expect(message).toContain("the port's output:\n  | name? ");
    expect(checkSerialOutput(result({ serial: '' }), 'x').failure).toContain('the port printed nothing.');
    expect(checkSerialOutput(7, 'x').failure).toMatch(/needs a RunResult, a SerialConsole, a run's handle or a string/);
  });

  it('awaits a promise of a result', async () => {
    await expect(Promise.resolve(exited3)).toHaveSerialOutput('Ada');
  });

  it('shows only the end of a long output', () => {
    const tail = outputTail(`${'x'.repeat(5000)}THE END`);
    expect(tail).toContain('(the last 2000 characters)');
    expect(tail).toContain('THE END');
    expect(tail.length).toBeLessThan(2200);
  });
});

describe('node:test assertions', () => {
  it('throw an AssertionError with the same message', () => {
    assertExitWith(exited3, 3);
    assertCrash(crashed, 'triple fault');
    assertSerialOutput(exited3, /Ada/);
    const err = (() => {
      try {
        assertExitWith(timedOut, 3);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(AssertionError);
    expect((err as AssertionError).message).toContain("ended with reason 'timeout'");
    expect(() => assertCrash(exited3)).toThrow(/expected the guest to crash/);
    expect(() => assertSerialOutput(exited3, 'Grace')).toThrow(AssertionError);
  });
});
