/**
 * What the test matchers check, runner-neutral: whether a run exited with a code, crashed, or
 * printed something, and the message a failure shows — how the run really ended and the last of
 * its serial output, which is what one needs to see when a guest test fails. tskvm/vitest wraps
 * these as expect() matchers, tskvm/node-test as assertions.
 */
import type { RunResult } from '../machine/result.js';

/** Serial output shown in a failure message, at most (the end of it: what the guest said last). */
const OUTPUT_SHOWN = 2000;

/** A check's verdict and both of its messages (for the matcher and its `.not`). */
export interface Verdict {
  pass: boolean;
  /** Why the check failed (shown when `pass` is false). */
  failure: string;
  /** Why the negated check failed (shown when `pass` is true under `.not`). */
  negatedFailure: string;
}

/** The parts of a RunResult the checks read (a result from another realm or a JSON copy works too). */
export type RunResultLike = Pick<RunResult, 'reason' | 'exitCode'> & Partial<Pick<RunResult, 'serial' | 'durationMs' | 'crash'>>;

/** Something that has printed serial output: a SerialConsole, or a run's handle (its COM1 console). */
export interface OutputSource {
  readonly output: string;
}

export function isRunResult(value: unknown): value is RunResultLike {
  return typeof value === 'object' && value !== null && typeof (value as RunResultLike).reason === 'string' && 'exitCode' in value;
}

/** A run's handle (GuestRun): its `result` is a promise. */
export function isRunHandle(value: unknown): value is { readonly result: PromiseLike<unknown>; readonly console?: OutputSource } {
  return typeof value === 'object' && value !== null && isThenable((value as { result?: unknown }).result);
}

export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/** How a run ended, in words: "reason 'timeout' (exit code 0) after 5012 ms". */
export function describeEnding(result: RunResultLike): string {
  const how =
    result.reason === 'debug-exit'
      ? `a debug-exit write of ${formatCode(result.exitCode)}`
      : result.reason === 'crash'
        ? `a crash (${result.crash?.description ?? 'no description'})`
        : `reason '${result.reason}'`;
  return `${how}${result.durationMs !== undefined ? ` after ${Math.round(result.durationMs)} ms` : ''}`;
}

/** The end of some serial output, indented, for a failure message. */
export function outputTail(output: string | undefined, label = 'COM1'): string {
  if (output === undefined) return '';
  if (output === '') return `\n${label} printed nothing.`;
  const shown = output.length > OUTPUT_SHOWN ? `…${output.slice(-OUTPUT_SHOWN)}` : output;
  return `\n${label}'s output${output.length > OUTPUT_SHOWN ? ` (the last ${OUTPUT_SHOWN} characters)` : ''}:\n${indent(shown)}`;
}

function indent(text: string): string {
  return text
    .replace(/\n$/, '')
    .split('\n')
    .map((line) => `  | ${line}`)
    .join('\n');
}

function formatCode(code: number): string {
  return code > 9 ? `${code} (0x${code.toString(16)})` : String(code);
}

/** Not a RunResult: the check fails, saying what it got and what to pass. */
function notAResult(received: unknown, what: string): Verdict {
  const hint = isRunHandle(received)
    ? ' (this is a run handle: await it, or pass `await run.result`)'
    : isThenable(received)
      ? ' (a promise: await it)'
      : '';
  const failure = `${what} needs a run's result (RunResult), but got ${typeName(received)}${hint}`;
  return { pass: false, failure, negatedFailure: failure };
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return `${typeof value} ${String(value).slice(0, 40)}`;
  return value.constructor?.name ? `a ${value.constructor.name}` : 'an object';
}

/** The run ended by a debug-exit write of `code` (the value the guest wrote, whole). */
export function checkExitWith(received: unknown, code: number): Verdict {
  if (!isRunResult(received)) return notAResult(received, 'toExitWith');
  const pass = received.reason === 'debug-exit' && received.exitCode === code;
  return {
    pass,
    failure: `expected the guest to exit with ${formatCode(code)}, but it ended with ${describeEnding(received)}${outputTail(received.serial)}`,
    negatedFailure: `expected the guest not to exit with ${formatCode(code)}, but it did${outputTail(received.serial)}`,
  };
}

/** The run ended in a crash (triple fault, KVM internal error, failed entry), its description matching if given. */
export function checkCrash(received: unknown, description?: string | RegExp): Verdict {
  if (!isRunResult(received)) return notAResult(received, 'toCrash');
  const crashed = received.reason === 'crash';
  const text = received.crash?.description ?? '';
  const matches = description === undefined || (typeof description === 'string' ? text.includes(description) : description.test(text));
  const wanted = description === undefined ? 'crash' : `crash with ${String(description)}`;
  return {
    pass: crashed && matches,
    failure: `expected the guest to ${wanted}, but it ended with ${describeEnding(received)}${outputTail(received.serial)}`,
    negatedFailure: `expected the guest not to ${wanted}, but it ended with ${describeEnding(received)}${
      received.crash?.state ? `\n${received.crash.state}` : ''
    }${outputTail(received.serial)}`,
  };
}

/**
 * The output contains `expected` (a string) or matches it (a RegExp). `received` is a result (its
 * COM1 output), a SerialConsole or a run's handle (the output so far), or the text itself.
 */
export function checkSerialOutput(received: unknown, expected: string | RegExp): Verdict {
  const output = outputOf(received);
  if (output === undefined) {
    const failure = `toHaveSerialOutput needs a RunResult, a SerialConsole, a run's handle or a string, but got ${typeName(received)}`;
    return { pass: false, failure, negatedFailure: failure };
  }
  const pass = typeof expected === 'string' ? output.includes(expected) : expected.test(output);
  const what = typeof expected === 'string' ? JSON.stringify(expected) : String(expected);
  const ending = isRunResult(received) ? ` (the run ended with ${describeEnding(received)})` : '';
  return {
    pass,
    failure: `expected the serial output to ${typeof expected === 'string' ? 'contain' : 'match'} ${what}${ending}${outputTail(output, 'the port')}`,
    negatedFailure: `expected the serial output not to ${typeof expected === 'string' ? 'contain' : 'match'} ${what}${outputTail(output, 'the port')}`,
  };
}

function outputOf(received: unknown): string | undefined {
  if (typeof received === 'string') return received;
  if (isRunResult(received)) return received.serial ?? '';
  if (typeof received !== 'object' || received === null) return undefined;
  const direct = (received as Partial<OutputSource>).output;
  if (typeof direct === 'string') return direct;
  if (!isRunHandle(received)) return undefined;
  try {
    const output = received.console?.output;
    return typeof output === 'string' ? output : undefined;
  } catch {
    return undefined; // a handle whose COM1 is not connected
  }
}
