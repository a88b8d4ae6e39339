/**
 * Fuzzing parameters shared by test/fuzz (fast-check properties over everything that parses
 * untrusted bytes). By default every property runs a modest number of cases from one fixed seed,
 * so `npm test` (and CI) is deterministic and quick. `npm run fuzz` raises the counts:
 *   TSKVM_FUZZ_RUNS   cases per property (overrides each property's default)
 *   TSKVM_FUZZ_SEED   an integer seed, or `random` for a new one each run (printed, to replay)
 *   TSKVM_FUZZ_PATH   with the seed, replays one counterexample (fast-check prints both on failure)
 */
import fc, { type Parameters } from 'fast-check';
import { expect } from 'vitest';

/** The seed CI uses: fixed, so a failure in CI is a failure on every machine. */
export const DEFAULT_FUZZ_SEED = 0x7c5c_2011;

function envInteger(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new Error(`${name}=${text} is not an integer`);
  return value;
}

function chooseSeed(): number {
  const text = process.env.TSKVM_FUZZ_SEED;
  if (text === 'random') return (Date.now() ^ (Math.random() * 2 ** 31)) | 0;
  return envInteger('TSKVM_FUZZ_SEED') ?? DEFAULT_FUZZ_SEED;
}

export const FUZZ_SEED = chooseSeed();
const RUNS_OVERRIDE = envInteger('TSKVM_FUZZ_RUNS');
const PATH = process.env.TSKVM_FUZZ_PATH || undefined;

if (FUZZ_SEED !== DEFAULT_FUZZ_SEED || RUNS_OVERRIDE !== undefined) {
  console.log(`fuzzing with TSKVM_FUZZ_SEED=${FUZZ_SEED}${RUNS_OVERRIDE === undefined ? '' : ` TSKVM_FUZZ_RUNS=${RUNS_OVERRIDE}`}`);
}

/** fc.assert's parameters for a property that runs `defaultRuns` cases unless TSKVM_FUZZ_RUNS says otherwise. */
export function fuzzParameters<T>(defaultRuns: number): Parameters<T> {
  return { seed: FUZZ_SEED, numRuns: RUNS_OVERRIDE ?? defaultRuns, ...(PATH ? { path: PATH } : {}) };
}

/** Per-test timeout: vitest's default for the CI counts, none when the counts are raised. */
export const FUZZ_TIMEOUT_MS = RUNS_OVERRIDE === undefined ? 60_000 : 0;

/** Cases between two yields to the event loop (a long synchronous run would stall vitest's worker RPC). */
const YIELD_EVERY = 100;

/**
 * Checks `check` against `defaultRuns` values of `arb` (or TSKVM_FUZZ_RUNS), from FUZZ_SEED;
 * a failing value is shrunk and reported with the seed and path that replay it.
 */
export async function fuzz<T>(arb: fc.Arbitrary<T>, check: (value: T) => void | Promise<void>, defaultRuns: number): Promise<void> {
  let cases = 0;
  const property = fc.asyncProperty(arb, async (value) => {
    if (++cases % YIELD_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
    await check(value);
  });
  await fc.assert(property, fuzzParameters<[T]>(defaultRuns));
}

// Cheap checks for the hot loops of model-based fuzzing: vitest's expect() costs microseconds a
// call, so it only runs (to report) when a check has already failed.

/** `actual` is `expected` (Object.is). */
export function same<T>(actual: T, expected: T, what?: string): void {
  if (!Object.is(actual, expected)) expect(actual, what).toBe(expected);
}

/** `condition` holds. */
export function holds(condition: boolean, what?: string): void {
  if (!condition) expect(condition, what).toBe(true);
}

/** Two lists with the same elements in the same order. */
export function sameList<T>(actual: readonly T[], expected: readonly T[], what?: string): void {
  if (actual.length !== expected.length || actual.some((v, i) => !Object.is(v, expected[i]))) expect(actual, what).toEqual(expected);
}
